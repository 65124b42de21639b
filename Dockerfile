# syntax=docker/dockerfile:1
# One image, two commands: `streamtrain-operator` (the operator Deployment)
# and `streamtrain` (the trainer and evaluator pods the operator starts).
#
# Build with any OCI builder from the repository root:
#   docker build -t ghcr.io/streamtrain/streamtrain:0.1.0 .
#   podman build -t ghcr.io/streamtrain/streamtrain:0.1.0 .
#   buildah bud -t ghcr.io/streamtrain/streamtrain:0.1.0 .
#
# The base is pinned to an exact Python patch release and Debian release; pin
# it further by digest in a release pipeline (python:3.11.14-slim-bookworm@sha256:...).
# Python 3.11 because tensorflow 2.16 / tensorflow-io 0.37 ship wheels for it.

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# ---------------------------------------------------------------- build
# Installs everything into a virtual environment that the final stage copies.
# Every dependency is a wheel (--only-binary), so no compiler is needed here
# either; only streamtrain itself is built, from pure Python sources.
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY workload/ workload/
COPY operator/ operator/
COPY localparts/ localparts/

RUN python -m venv /opt/streamtrain \
 && /opt/streamtrain/bin/pip install --no-cache-dir --only-binary=:all: \
      "setuptools==80.9.0" "wheel==0.45.1" \
 && /opt/streamtrain/bin/pip wheel --no-cache-dir --no-deps --no-build-isolation \
      --wheel-dir /wheels . \
 && /opt/streamtrain/bin/pip install --no-cache-dir --only-binary=:all: \
      "$(ls /wheels/streamtrain-*.whl)[workload,operator]" \
 && /opt/streamtrain/bin/pip uninstall --yes setuptools wheel

# ---------------------------------------------------------------- final
# The Python runtime and the virtual environment; no compilers, no pip cache,
# no build tools. Runs as an unprivileged numeric UID so Kubernetes can
# verify runAsNonRoot, and works with a read-only root filesystem (writable
# state goes to /tmp and to the model volume).
FROM ${PYTHON_IMAGE}

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="streamtrain" \
      org.opencontainers.image.description="Kubernetes operator and workload that train TensorFlow models on data streamed from Kafka" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/streamtrain/streamtrain" \
      org.opencontainers.image.version="${VERSION}"

COPY --from=build /opt/streamtrain /opt/streamtrain

ENV PATH=/opt/streamtrain/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    KERAS_HOME=/tmp/.keras \
    MPLCONFIGDIR=/tmp/matplotlib \
    TF_CPP_MIN_LOG_LEVEL=2

USER 65532:65532
WORKDIR /tmp

# The Deployment runs `streamtrain-operator`; trainer and evaluator pods run
# `streamtrain`. Without a command the image prints the workload's help.
CMD ["streamtrain", "--help"]
