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
GO ?= go
# Go code generators, pinned (protoc-gen-go at the protobuf runtime version clients/go/go.mod uses)
# and installed from the Go module proxy into .tools/bin, where buf.gen.yaml looks for them.
PROTOC_GEN_GO := google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GO_GRPC := google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
# Reflection-free marshalling for the Go client (clients/go/internal/wirecodec); the version grpc's
# own module graph already requires, so that adding it moves no other module.
PROTOC_GEN_GO_VTPROTO := github.com/planetscale/vtprotobuf/cmd/protoc-gen-go-vtproto@v0.6.1-0.20240319094008-0393e58bdf10
GO_TOOLS := .tools/bin
TS := clients/ts

.PHONY: help setup demo test check-generated generate lint test-python proto-baseline bench \
	tools-go setup-go setup-ts test-go test-ts interop-vectors bench-clients bench-fleet test-loaded setup-browser

help:
	@echo "make demo   - start agl-server on its embedded LMDB store and run the quick-start example"
	@echo "make test   - run every check and test (codegen, lint, Python, Go and TypeScript clients)"
	@echo "make test-loaded - the Python, Go and TypeScript tests beside a CPU hog (HOG_PER_CORE busy processes per core)"
	@echo "make bench  - run the benchmarks (tables printed, results saved under bench/results)"

# setup.py and the .pyx: a changed span loop or wire check is compiled again (pip builds it in place).
$(VENV)/.installed: pyproject.toml setup.py $(wildcard agl_core/store/*.pyx agl_core/store/*.pxd agl_core/store/lmdb/*.pyx agl_core/store/lmdb/*.pxd)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

# The lock lists buf's per-platform packages for every platform (the registry reachable here serves
# only the linux ones, so `npm install` here would drop the others and break `npm ci` elsewhere).
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The verl plugin's tests need verl and torch: the `verl` extra (PyPI's torch is the CUDA build, so
# this is about 5.6 GB and 4.5 minutes from an empty pip cache; once installed it is not redone).
$(VENV)/.verl-installed: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install --quiet -e '.[dev,verl]'
	touch $@

setup: $(VENV)/.installed node_modules/.installed

$(GO_TOOLS)/.installed: Makefile
	GOBIN=$(abspath $(GO_TOOLS)) $(GO) install $(PROTOC_GEN_GO)
	GOBIN=$(abspath $(GO_TOOLS)) $(GO) install $(PROTOC_GEN_GO_GRPC)
	GOBIN=$(abspath $(GO_TOOLS)) $(GO) install $(PROTOC_GEN_GO_VTPROTO)
	touch $@

tools-go: $(GO_TOOLS)/.installed

$(GO_TOOLS)/.go-mod: clients/go/go.mod clients/go/go.sum
	cd clients/go && $(GO) mod download
	mkdir -p $(GO_TOOLS) && touch $@

setup-go: $(GO_TOOLS)/.go-mod

$(TS)/node_modules/.installed: $(TS)/package.json $(TS)/package-lock.json
	cd $(TS) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

setup-ts: $(TS)/node_modules/.installed

generate: setup tools-go setup-ts
	$(PY) scripts/gen_protos.py
	$(BUF) format -w
	$(BUF) generate

# Generated code must match protos/, protos must lint and be formatted, and the API must not break
# against the committed baseline image (regenerate it with `make proto-baseline` only for an
# intended break).
check-generated: setup tools-go setup-ts
	$(PY) scripts/gen_protos.py --check
	$(BUF) lint
	$(BUF) format --diff --exit-code
	$(BUF) breaking --against protos/api-baseline.binpb
	scripts/check_buf_generated.sh

proto-baseline: setup
	$(BUF) build --exclude-source-info -o protos/api-baseline.binpb

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The dashboard's browser test (tests/dashboard) drives Debian's chromium through Playwright; installed
# only when missing (as root, or through sudo when there is one).
setup-browser:
	@if [ ! -x /usr/bin/chromium ]; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y --no-install-recommends chromium; \
	fi

# tests/interop also builds and runs the Go and TypeScript example agents.
test-python: setup setup-go setup-ts setup-browser $(VENV)/.verl-installed
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# The Go and TS suites start real agl-server processes from .venv, so they need the Python setup.
# -count=1: Go's test cache cannot see changes to the Python server the tests run against.
test-go: setup setup-go
	cd clients/go && $(GO) vet ./... && $(GO) test -count=1 ./...

test-ts: setup setup-ts
	cd $(TS) && npm test

# Rewrites the per-language encodings of the interop vectors (clients/interop/vectors) after a
# change of the vectors or the protos, then cross-checks them; each suite checks its own
# encodings are current.
interop-vectors: setup setup-go setup-ts
	AGL_UPDATE_VECTORS=1 $(VENV)/bin/pytest -q tests/interop/test_vectors.py
	cd clients/go && AGL_UPDATE_VECTORS=1 $(GO) test -count=1 ./interop/
	cd $(TS) && npm run build && AGL_UPDATE_VECTORS=1 node --test dist/test/interop.test.js
	$(VENV)/bin/pytest -q tests/interop/test_vectors.py
	cd clients/go && $(GO) test -count=1 ./interop/
	cd $(TS) && node --test dist/test/interop.test.js

test: check-generated lint test-python test-go test-ts

# The tests must hold on a busy machine (load 8-20 on 2 cores): the same suites beside busy-looping
# processes, which scripts/cpu_hog.py always ends when the suites end or are interrupted.
HOG_PER_CORE ?= 4
test-loaded: setup setup-go setup-ts setup-browser $(VENV)/.verl-installed
	$(PY) scripts/cpu_hog.py --per-core $(HOG_PER_CORE) -- $(MAKE) --no-print-directory test-python test-go test-ts

demo: setup
	$(PY) examples/quickstart.py

# Span streaming through the Python, Go and TypeScript clients, same server, same run; then what
# encoding a span batch costs the Go and TypeScript clients.
bench-clients: setup setup-go setup-ts
	$(PY) bench/clients_bench.py
	$(PY) bench/go_codec_bench.py
	$(PY) bench/ts_codec_bench.py

# 1,000 goroutine workers on their own Work streams against one agl-server (bench/fleet_bench.py).
bench-fleet: setup setup-go
	$(PY) bench/fleet_bench.py

bench: setup
	$(PY) bench/store_bench.py
	$(PY) bench/store_scale_bench.py
	$(PY) bench/span_growth_bench.py
	$(PY) bench/span_storage_bench.py
	$(PY) bench/tracing_bench.py
	$(PY) bench/runner_bench.py
	$(PY) bench/llm_proxy_bench.py
	$(PY) bench/retention_bench.py
