# Every target sets up what it needs (virtual environment, npm and Go tools) from the package
# registries, so both `make demo` and `make test` work on a fresh clone.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BUF := node_modules/.bin/buf
PYTEST_ARGS ?=

.PHONY: help setup demo test check-generated generate lint test-python proto-baseline bench

help:
	@echo "make demo   - start agl-server on its embedded LMDB store and run the quick-start example"
	@echo "make test   - run every check and test (codegen, lint, Python)"
	@echo "make bench  - run the benchmarks (tables printed, results saved under bench/results)"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

# `npm install` (with the committed lock) rather than `npm ci`: the registry reachable here serves only
# the linux builds of buf's optional per-platform packages, so the lock cannot list the others and
# `npm ci` would reject it as out of sync.
node_modules/.installed: package.json package-lock.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

# The verl plugin's tests need verl and torch: the `verl` extra (PyPI's torch is the CUDA build, so
# this is about 5.6 GB and 4.5 minutes from an empty pip cache; once installed it is not redone).
$(VENV)/.verl-installed: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install --quiet -e '.[dev,verl]'
	touch $@

setup: $(VENV)/.installed node_modules/.installed

generate: setup
	$(PY) scripts/gen_protos.py
	$(BUF) format -w

# Generated code must match protos/, protos must lint and be formatted, and the API must not break
# against the committed baseline image (regenerate it with `make proto-baseline` only for an
# intended break).
check-generated: setup
	$(PY) scripts/gen_protos.py --check
	$(BUF) lint
	$(BUF) format --diff --exit-code
	$(BUF) breaking --against protos/api-baseline.binpb

proto-baseline: setup
	$(BUF) build --exclude-source-info -o protos/api-baseline.binpb

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test-python: setup $(VENV)/.verl-installed
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test: check-generated lint test-python

demo: setup
	$(PY) examples/quickstart.py

bench: setup
	$(PY) bench/store_bench.py
	$(PY) bench/tracing_bench.py
	$(PY) bench/llm_proxy_bench.py
