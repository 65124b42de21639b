# syntax=docker/dockerfile:1
# Four images from one file, each with only what its pods run:
#   operator       `streamtrain-operator` (kopf, kubernetes, pydantic): no TensorFlow
#   workload       `streamtrain`, the trainer and evaluator pods (TensorFlow 2.21, librdkafka 2.x)
#   workload-tfio  the same for `spec.kafka.client: tensorflow-io` (Kafka 3.x): tensorflow-io
#                  0.37.1 loads only beside TensorFlow 2.16, so it has a pin set of its own
#   serve          `streamtrain` for serving pods whose model has a LiteRT scorer
#                  (`spec.serve.image`): numpy, librdkafka 2.x and LiteRT, no TensorFlow
# Each installs the pyproject extra of the same name.
#
# Build from the repository root with any OCI builder:
#   docker build --target operator -t streamtrain-operator:0.1.0 .
#   podman build --target workload -t streamtrain-workload:0.1.0 .
#   buildah bud --layers --target workload -t streamtrain-workload:0.1.0 .
# or `make image`, which picks the engine that works here and writes OCI archives.
#
# BASE_IMAGE needs Python 3.11 (the workload's pins ship wheels for 3.11-3.13, the
# tensorflow-io set's for 3.11 and 3.12) with `venv`, on Debian bookworm. `make image` passes a base bootstrapped
# locally with mmdebstrap (bookworm's python3 is 3.11); a release pipeline pins
# the default by digest (python:3.11-slim-bookworm@sha256:...).
ARG BASE_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------- build
# The pinned requirements of each extra, read from pyproject.toml, so the
# dependency step reruns only when the pins change, not on every code change.
# Every dependency is a wheel (--only-binary): no compiler anywhere.
FROM ${BASE_IMAGE} AS build-base
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml ./
RUN python3 -c 'import tomllib; project = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
[open(f"requirements-{extra}.txt", "w").write("\n".join(project["dependencies"] + pins) + "\n") \
 for extra, pins in project["optional-dependencies"].items()]'

# streamtrain itself, built once from its pure Python sources and installed
# under a prefix laid out as the images' environment (/opt/streamtrain; its
# commands start /opt/streamtrain/bin/python), so each image copies it in:
# /app/workload whole, /app/operator without `localparts` (the tools that
# run Kafka and a control plane on a developer's machine).
FROM build-base AS app
COPY README.md ./
COPY workload/ workload/
COPY operator/ operator/
COPY localparts/ localparts/
RUN python3 -m venv /opt/streamtrain \
 && /opt/streamtrain/bin/pip install --only-binary=:all: "setuptools==80.9.0" "wheel==0.45.1" \
 && /opt/streamtrain/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /wheels . \
 && /opt/streamtrain/bin/pip install --no-deps --prefix /app/workload /wheels/streamtrain-*.whl \
 && cp -a /app/workload /app/operator \
 && rm -r /app/operator/bin/streamtrain-local \
          /app/operator/lib/python3.11/site-packages/localparts

# ---------------------------------------------------------------- runtime
# What the images share: the Python runtime, no compilers, no pip cache, an
# unprivileged numeric UID (so Kubernetes can verify runAsNonRoot), and
# nothing written outside /tmp, so a read-only root filesystem works
# (models and ledgers go to the mounted volume).
#
# Each image installs its dependencies in its own final stage, not in a
# build stage whose environment is then copied over: with podman's or
# buildah's `vfs` storage every layer and every build container is a full
# copy of the tree below it, and the workload's environment is 2.6 GB.
# Wheels are kept in a cache mount (/wheelhouse) and installed from there:
# a pin change downloads only what changed (pip's own HTTP cache is not
# enough: it keeps nothing when a proxy marks responses uncacheable). Each
# environment is made with pip, which is then removed.
FROM ${BASE_IMAGE} AS runtime
ARG VERSION=0.1.0
LABEL org.opencontainers.image.description="Kubernetes operator and workload that train TensorFlow models on data streamed from Kafka" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/streamtrain/streamtrain" \
      org.opencontainers.image.version="${VERSION}"
ENV PATH=/opt/streamtrain/bin:$PATH \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
WORKDIR /tmp

# The operator: the `operator` extra, without pip or setuptools, and without
# the asyncio copy of the Kubernetes client (kubernetes/aio, about 70 MB)
# that neither kopf nor the operator imports.
FROM runtime AS operator
LABEL org.opencontainers.image.title="streamtrain-operator"
CMD ["streamtrain-operator", "--help"]
RUN --mount=type=cache,id=streamtrain-wheels,target=/wheelhouse,sharing=locked \
    --mount=type=bind,from=build-base,source=/src,target=/src \
    python3 -m venv /opt/streamtrain \
 && /opt/streamtrain/bin/pip download --only-binary=:all: --find-links /wheelhouse \
      --dest /wheelhouse -r /src/requirements-operator.txt \
 && /opt/streamtrain/bin/pip install --no-index --find-links /wheelhouse -r /src/requirements-operator.txt \
 && /opt/streamtrain/bin/pip uninstall --yes pip setuptools \
 && rm -r /opt/streamtrain/lib/python3.11/site-packages/kubernetes/aio
COPY --from=app /app/operator/ /opt/streamtrain/
USER 65532:65532

# What both workload images set: TensorFlow's and Keras' files under /tmp.
FROM runtime AS workload-runtime
ENV KERAS_HOME=/tmp/.keras \
    MPLCONFIGDIR=/tmp/matplotlib \
    TF_CPP_MIN_LOG_LEVEL=2
CMD ["streamtrain", "--help"]

# The tensorflow-io client's image: the `workload-tfio` extra and streamtrain.
FROM workload-runtime AS workload-tfio
LABEL org.opencontainers.image.title="streamtrain-workload-tfio"
RUN --mount=type=cache,id=streamtrain-wheels,target=/wheelhouse,sharing=locked \
    --mount=type=bind,from=build-base,source=/src,target=/src \
    python3 -m venv /opt/streamtrain \
 && /opt/streamtrain/bin/pip download --only-binary=:all: --find-links /wheelhouse \
      --dest /wheelhouse -r /src/requirements-workload-tfio.txt \
 && /opt/streamtrain/bin/pip install --no-index --find-links /wheelhouse -r /src/requirements-workload-tfio.txt \
 && /opt/streamtrain/bin/pip uninstall --yes pip
COPY --from=app /app/workload/ /opt/streamtrain/
USER 65532:65532

# Serving without TensorFlow: set `spec.serve.image` to it when the job's model has a LiteRT
# scorer (a model that did not convert is served with TensorFlow: the workload image). The
# `serve` extra and streamtrain without the local parts, without pip or setuptools.
FROM runtime AS serve
LABEL org.opencontainers.image.title="streamtrain-serve"
CMD ["streamtrain", "--help"]
RUN --mount=type=cache,id=streamtrain-wheels,target=/wheelhouse,sharing=locked \
    --mount=type=bind,from=build-base,source=/src,target=/src \
    python3 -m venv /opt/streamtrain \
 && /opt/streamtrain/bin/pip download --only-binary=:all: --find-links /wheelhouse \
      --dest /wheelhouse -r /src/requirements-serve.txt \
 && /opt/streamtrain/bin/pip install --no-index --find-links /wheelhouse -r /src/requirements-serve.txt \
 && /opt/streamtrain/bin/pip uninstall --yes pip setuptools
COPY --from=app /app/operator/ /opt/streamtrain/
USER 65532:65532

# The last stage, so a build without --target gives the workload image: the
# `workload` extra and streamtrain.
FROM workload-runtime AS workload
LABEL org.opencontainers.image.title="streamtrain-workload"
RUN --mount=type=cache,id=streamtrain-wheels,target=/wheelhouse,sharing=locked \
    --mount=type=bind,from=build-base,source=/src,target=/src \
    python3 -m venv /opt/streamtrain \
 && /opt/streamtrain/bin/pip download --only-binary=:all: --find-links /wheelhouse \
      --dest /wheelhouse -r /src/requirements-workload.txt \
 && /opt/streamtrain/bin/pip install --no-index --find-links /wheelhouse -r /src/requirements-workload.txt \
 && /opt/streamtrain/bin/pip uninstall --yes pip
COPY --from=app /app/workload/ /opt/streamtrain/
USER 65532:65532
