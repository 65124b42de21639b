# streamtrain — every target installs what it needs (cached under ~/.cache/streamtrain).
SHELL := /bin/bash
.DEFAULT_GOAL := help

CACHE ?= $(or $(STREAMTRAIN_CACHE),$(HOME)/.cache/streamtrain)
# localparts reads the cache folder from the environment.
export STREAMTRAIN_CACHE := $(CACHE)
VENV ?= $(CACHE)/venv
PYTHON ?= python3.11
PY := $(VENV)/bin/python
# Reinstall when the pins change or the checkout moves (the install is editable).
SETUP_STAMP := $(VENV)/.installed-$(shell cat pyproject.toml 2>/dev/null | sha256sum | cut -c1-12)-$(shell echo '$(CURDIR)' | sha256sum | cut -c1-8)
PYTEST_ARGS ?=
# e.g. IMAGE_ARGS="--engine docker --base python:3.11-slim-bookworm" (default: any engine, a local base)
IMAGE_ARGS ?=

.PHONY: help setup kafka-jars parts demo test unit security lint crds bench bench-operator faults quality image image-test clean-cache

help:  ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 14

$(SETUP_STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found: install Python 3.11 (Debian: apt-get install python3.11 python3.11-venv)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

setup: $(SETUP_STAMP)  ## Python environment (TensorFlow, tensorflow-io, kopf, ...)

kafka-jars: setup  ## Kafka broker jars only (all the demo needs)
	$(PY) -m localparts install kafka

parts: setup  ## Kafka broker jars and Kubernetes control plane binaries
	$(PY) -m localparts install

demo: kafka-jars  ## The main job: the Kafka tutorial end to end on a local broker
	$(PY) -m workload.cli demo --output demo-output

test: parts lint  ## Lint, then every test: unit, integration (real Kafka, real API server), end to end
	$(PY) -m pytest $(PYTEST_ARGS)

unit: setup  ## Unit tests only (no servers)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

security: parts  ## Security tests: Pod Security, least-privilege RBAC, SCRAM/TLS, no secret leaks
	$(PY) -m pytest tests/security $(PYTEST_ARGS)

lint: setup  ## ruff and mypy --strict
	$(PY) -m ruff check workload localparts operator tests bench
	$(PY) -m mypy workload localparts operator/streamtrain_operator

crds: setup  ## Regenerate crds/ from the spec model and copy it (and RBAC) into the chart
	$(PY) -m streamtrain_operator.crd
	$(PY) -m localparts.helm sync

bench: parts  ## Input pipeline and evaluation benchmarks (prints a table, writes JSON)
	$(PY) -m bench.input_pipeline

quality: kafka-jars  ## The default model on every generated data family vs its Bayes-optimal accuracy (table, JSON)
	$(PY) -m bench.quality

bench-operator: parts  ## The operator with 200 jobs on the real control plane: latency, CPU, memory, idle API requests (table + JSON)
	$(PY) -m bench.operator_scale

faults: parts  ## Fault scenarios: kills, broker restarts, bad input; prints a table of figures, writes JSON
	$(PY) -m bench.faults_report

image:  ## Operator and workload images from the Dockerfile (docker, podman or buildah) -> dist/*.tar
	$(PYTHON) -m localparts.image $(IMAGE_ARGS)

image-test: image parts  ## Run the images: entry points, a job in the workload image, the operator image, one e2e job
	$(PY) -m pytest tests/image $(PYTEST_ARGS)

clean-cache:  ## Forget every cached download and build
	rm -rf $(CACHE)
