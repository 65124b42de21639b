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
# dependency layers are rebuilt only when the pins change, not on every code
# change. Every dependency is a wheel (--only-binary): no compiler anywhere.
# Wheels are kept in a cache mount (/wheelhouse) and installed from there:
# a pin change downloads only what changed (pip's own HTTP cache is not
# enough: it keeps nothing when a proxy marks responses uncacheable).
FROM ${BASE_IMAGE} AS build-base
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml ./
RUN python3 -c 'import tomllib; project = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
[open(f"requirements-{extra}.txt", "w").write("\n".join(project["dependencies"] + pins) + "\n") \
 for extra, pins in project["optional-dependencies"].items()]'

# streamtrain itself, built once from its pure Python sources.
FROM build-base AS wheel
COPY README.md ./
COPY workload/ workload/
COPY operator/ operator/
COPY localparts/ localparts/
RUN python3 -m venv /opt/wheel \
 && /opt/wheel/bin/pip install --only-binary=:all: "setuptools==80.9.0" "wheel==0.45.1" \
 && /opt/wheel/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /wheels .

# The operator's virtual environment: the `operator` extra, and streamtrain
# without `localparts` (the tools that run Kafka and a control plane on a
# developer's machine), without pip or setuptools, and without the asyncio
# copy of the Kubernetes client (kubernetes/aio, about 70 MB) that neither
# kopf nor the operator imports.
FROM build-base AS build-operator
RUN --mount=type=cache,id=streamtrain-wheels,target=/wheelhouse,sharing=locked \
    python3 -m venv /opt/streamtrain \
 && /opt/streamtrain/bin/pip download --only-binary=:all: --find-links /wheelhouse \
      --dest /wheelhouse -r requirements-operator.txt \
 && /opt/streamtrain/bin/pip install --no-index --find-links /wheelhouse -r requirements-operator.txt
COPY --from=wheel /wheels /wheels
RUN /opt/streamtrain/bin/pip install --no-deps /wheels/streamtrain-*.whl \
 && /opt/streamtrain/bin/pip uninstall --yes pip setuptools \
 && rm -r /opt/streamtrain/bin/streamtrain-local \
          /opt/streamtrain/lib/python3.11/site-packages/localparts \
          /opt/streamtrain/lib/python3.11/site-packages/kubernetes/aio

# The workload's virtual environment: the `workload` extra and streamtrain.
FROM build-base AS build-workload
RUN --mount=type=cache,id=streamtrain-wheels,target=/wheelhouse,sharing=locked \
    python3 -m venv /opt/streamtrain \
 && /opt/streamtrain/bin/pip download --only-binary=:all: --find-links /wheelhouse \
      --dest /wheelhouse -r requirements-workload.txt \
 && /opt/streamtrain/bin/pip install --no-index --find-links /wheelhouse -r requirements-workload.txt
COPY --from=wheel /wheels /wheels
RUN /opt/streamtrain/bin/pip install --no-deps /wheels/streamtrain-*.whl \
 && /opt/streamtrain/bin/pip uninstall --yes pip

# The tensorflow-io client's virtual environment: the `workload-tfio` extra and streamtrain.
FROM build-base AS build-workload-tfio
RUN --mount=type=cache,id=streamtrain-wheels,target=/wheelhouse,sharing=locked \
    python3 -m venv /opt/streamtrain \
 && /opt/streamtrain/bin/pip download --only-binary=:all: --find-links /wheelhouse \
      --dest /wheelhouse -r requirements-workload-tfio.txt \
 && /opt/streamtrain/bin/pip install --no-index --find-links /wheelhouse -r requirements-workload-tfio.txt
COPY --from=wheel /wheels /wheels
RUN /opt/streamtrain/bin/pip install --no-deps /wheels/streamtrain-*.whl \
 && /opt/streamtrain/bin/pip uninstall --yes pip

# The serving pods' virtual environment: the `serve` extra and streamtrain, without TensorFlow
# or Keras (a replica scores with the LiteRT file the trainer exported), without the local
# parts, and without pip.
FROM build-base AS build-serve
RUN --mount=type=cache,id=streamtrain-wheels,target=/wheelhouse,sharing=locked \
    python3 -m venv /opt/streamtrain \
 && /opt/streamtrain/bin/pip download --only-binary=:all: --find-links /wheelhouse \
      --dest /wheelhouse -r requirements-serve.txt \
 && /opt/streamtrain/bin/pip install --no-index --find-links /wheelhouse -r requirements-serve.txt
COPY --from=wheel /wheels /wheels
RUN /opt/streamtrain/bin/pip install --no-deps /wheels/streamtrain-*.whl \
 && /opt/streamtrain/bin/pip uninstall --yes pip \
 && rm -r /opt/streamtrain/bin/streamtrain-local \
          /opt/streamtrain/lib/python3.11/site-packages/localparts

# ---------------------------------------------------------------- runtime
# What both images share: the Python runtime, no compilers, no pip cache, an
# unprivileged numeric UID (so Kubernetes can verify runAsNonRoot), and
# nothing written outside /tmp, so a read-only root filesystem works
# (models and ledgers go to the mounted volume).
FROM ${BASE_IMAGE} AS runtime
ARG VERSION=0.1.0
LABEL org.opencontainers.image.description="Kubernetes operator and workload that train TensorFlow models on data streamed from Kafka" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/streamtrain/streamtrain" \
      org.opencontainers.image.version="${VERSION}"
ENV PATH=/opt/streamtrain/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
USER 65532:65532
WORKDIR /tmp

FROM runtime AS operator
LABEL org.opencontainers.image.title="streamtrain-operator"
COPY --from=build-operator /opt/streamtrain /opt/streamtrain
CMD ["streamtrain-operator", "--help"]

# What both workload images set: TensorFlow's and Keras' files under /tmp.
FROM runtime AS workload-runtime
ENV KERAS_HOME=/tmp/.keras \
    MPLCONFIGDIR=/tmp/matplotlib \
    TF_CPP_MIN_LOG_LEVEL=2

FROM workload-runtime AS workload-tfio
LABEL org.opencontainers.image.title="streamtrain-workload-tfio"
COPY --from=build-workload-tfio /opt/streamtrain /opt/streamtrain
CMD ["streamtrain", "--help"]

# Serving without TensorFlow: set `spec.serve.image` to it when the job's model has a LiteRT
# scorer (a model that did not convert is served with TensorFlow: the workload image).
FROM runtime AS serve
LABEL org.opencontainers.image.title="streamtrain-serve"
COPY --from=build-serve /opt/streamtrain /opt/streamtrain
CMD ["streamtrain", "--help"]

# The last stage, so a build without --target gives the workload image.
FROM workload-runtime AS workload
LABEL org.opencontainers.image.title="streamtrain-workload"
COPY --from=build-workload /opt/streamtrain /opt/streamtrain
CMD ["streamtrain", "--help"]
