# streamtrain — every target installs what it needs (cached under ~/.cache/streamtrain).
SHELL := /bin/bash
.DEFAULT_GOAL := help

CACHE ?= $(or $(STREAMTRAIN_CACHE),$(HOME)/.cache/streamtrain)
# localparts reads the cache folder from the environment.
export STREAMTRAIN_CACHE := $(CACHE)
# The Python to build the environment with: 3.11 (what make test and CI run), 3.12 or 3.13. Each
# other than 3.11 gets an environment of its own, e.g. make unit PYTHON=python3.13.
PYTHON ?= python3.11
VENV ?= $(CACHE)/venv$(if $(filter python3.11,$(PYTHON)),,-$(notdir $(PYTHON)))
PY := $(VENV)/bin/python
# The tensorflow-io client's pin set (TensorFlow 2.16, the `dev-tfio` extra) in an environment of
# its own, made only by what needs it: make test (its tests), make bench (the tutorial's
# baselines). TensorFlow 2.16 has wheels up to 3.12; 3.11 is the version it is tested on.
TFIO_PYTHON ?= python3.11
TFIO_VENV ?= $(CACHE)/venv-tfio
TFIO_PY := $(TFIO_VENV)/bin/python
# A Python by name: the command, else pyenv's installed version of it, else how to install one.
FIND_PYTHON := bash localparts/find_python.sh
# Reinstall when the pins change or the checkout moves (the install is editable); an environment
# made for other pins is made anew, so nothing the pins dropped stays installed.
PINS_ID := $(shell cat pyproject.toml 2>/dev/null | sha256sum | cut -c1-12)
INSTALL_ID := $(PINS_ID)-$(shell echo '$(CURDIR)' | sha256sum | cut -c1-8)
SETUP_STAMP := $(VENV)/.installed-$(INSTALL_ID)
TFIO_STAMP := $(TFIO_VENV)/.installed-$(INSTALL_ID)
PYTEST_ARGS ?=
# Processes `make test` spreads the test files over (pytest-xdist, a file's tests stay together).
TEST_WORKERS ?= 2
# make demo FORMAT=avro: the demo's records as Avro through a local schema registry (started, and
# fetched the first time, only then).
FORMAT ?= csv
# e.g. IMAGE_ARGS="--engine docker --base python:3.11-slim-bookworm" (default: any engine, a local base)
IMAGE_ARGS ?=

.PHONY: help setup setup-tfio kafka-jars parts demo test unit security lint crds bench bench-operator faults quality image image-tfio image-serve image-test clean-cache

help:  ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 14

# $(1): the environment's folder, $(2): the Python to make it with, $(3): the extra to install.
define make_venv
	@test ! -d $(1) || test -e $(1)/.pins-$(PINS_ID) || { echo "$(1) was made for other pins: making it anew"; rm -rf $(1); }
	@test -x $(1)/bin/python || { python=$$($(FIND_PYTHON) $(2)) && echo "$$python -m venv $(1)" && $$python -m venv $(1); }
	$(1)/bin/python -m pip install --quiet --upgrade pip
	$(1)/bin/python -m pip install --quiet -e '.[$(3)]'
	$(1)/bin/python -m pip check
	@rm -f $(1)/.installed-* $(1)/.pins-*
	@touch $(1)/.pins-$(PINS_ID) $@
endef

$(SETUP_STAMP): pyproject.toml
	$(call make_venv,$(VENV),$(PYTHON),dev)

$(TFIO_STAMP): pyproject.toml
	$(call make_venv,$(TFIO_VENV),$(TFIO_PYTHON),dev-tfio)

setup: $(SETUP_STAMP)  ## Python environment (TensorFlow 2.21, confluent-kafka, kopf, ...)

setup-tfio: $(TFIO_STAMP)  ## The tensorflow-io client's own environment (TensorFlow 2.16): <cache>/venv-tfio

kafka-jars: setup  ## Kafka broker jars only (all the demo needs)
	$(PY) -m localparts install kafka

parts: setup  ## Kafka broker jars, the schema registry, Kubernetes control plane, helm and Kueue binaries
	$(PY) -m localparts install

demo: kafka-jars  ## The main job: the Kafka tutorial end to end on a local broker
	$(PY) -m workload.cli demo --output demo-output --format $(FORMAT)

# Two runs of pytest $(1): in the default environment, then the tensorflow-io client's tests
# (tests/**/test_tensorflow_io_*.py) in its own; both run, and either failing fails the target.
define both_pytests
	@status=0; \
	echo "$(PY) -m pytest $(1)"; $(PY) -m pytest $(1) || status=$$?; \
	echo "$(TFIO_PY) -m pytest --tensorflow-io $(1)"; $(TFIO_PY) -m pytest --tensorflow-io $(1) || status=$$?; \
	exit $$status
endef

test: parts lint setup-tfio  ## Lint, then every test: unit, integration (real Kafka, real API server), end to end
	$(call both_pytests,-n $(TEST_WORKERS) --dist loadfile --durations=25 $(PYTEST_ARGS))

unit: setup  ## Unit tests only (no servers)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

security: parts setup-tfio  ## Security tests: Pod Security, least-privilege RBAC, SCRAM/TLS, no secret leaks
	$(call both_pytests,tests/security $(PYTEST_ARGS))

lint: setup  ## ruff and mypy --strict
	$(PY) -m ruff check workload localparts operator tests bench
	$(PY) -m mypy workload localparts operator/streamtrain_operator

crds: setup  ## Regenerate crds/ from the spec model and copy it (and RBAC) into the chart
	$(PY) -m streamtrain_operator.crd
	$(PY) -m localparts.helm sync

bench: parts setup-tfio  ## Input pipeline and evaluation benchmarks (prints a table, writes JSON)
	$(PY) -m bench.input_pipeline --tutorial-python $(TFIO_PY)

quality: kafka-jars  ## The default model on every generated data family vs its Bayes-optimal accuracy (table, JSON)
	$(PY) -m bench.quality

bench-operator: parts  ## The operator with 200, then 1,000 jobs on the real control plane: latency, API requests per pass, CPU, memory, idle API requests (tables + JSON)
	$(PY) -m bench.operator_scale --jobs 200 --output bench-operator-200.json; met=$$?; \
	$(PY) -m bench.operator_scale --jobs 1000 --output bench-operator-1000.json && exit $$met

faults: parts  ## Fault scenarios: kills, broker restarts, bad input; prints a table of figures, writes JSON
	$(PY) -m bench.faults_report

image:  ## Operator and workload images from the Dockerfile (docker, podman or buildah) -> dist/*.tar
	python=$$($(FIND_PYTHON) $(PYTHON)) && $$python -m localparts.image $(IMAGE_ARGS)

image-tfio:  ## The workload image of the tensorflow-io client (TensorFlow 2.16) -> dist/streamtrain-workload-tfio.tar
	python=$$($(FIND_PYTHON) $(PYTHON)) && $$python -m localparts.image --target workload-tfio $(IMAGE_ARGS)

image-serve:  ## The serving image without TensorFlow (LiteRT scorers) -> dist/streamtrain-serve.tar
	python=$$($(FIND_PYTHON) $(PYTHON)) && $$python -m localparts.image --target serve $(IMAGE_ARGS)

image-test: image image-tfio image-serve parts  ## Run the images: entry points, a job in the workload image, the tensorflow-io image, the serve image's predictions, the operator image, one e2e job
	$(PY) -m pytest tests/image $(PYTEST_ARGS)

clean-cache:  ## Forget every cached download and build
	rm -rf $(CACHE)
