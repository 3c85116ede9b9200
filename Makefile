# Synod — every entry point. `make demo` and `make test` set themselves up (idempotent).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
NODE_BIN := $(CURDIR)/node_modules/.bin
export PATH := $(NODE_BIN):$(CURDIR)/$(VENV)/bin:$(PATH)
# llama.cpp must be built portably: a native build crashes on this CPU family (AMX path).
export CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
export FOUNDRY_DISABLE_NIGHTLY_WARNING := 1

STAMP := .stamps
NPM_STAMP := $(STAMP)/npm
VENV_STAMP := $(STAMP)/venv
GMP_STAMP := $(STAMP)/libgmp
# apt-get needs root: sudo when not root already
SUDO := $(shell test "$$(id -u)" = 0 || echo sudo)

.PHONY: help setup build test test-all test-contracts test-python test-shim test-adversary demo bench lint fmt audit clean mutation

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(NPM_STAMP): package.json package-lock.json
	@mkdir -p $(STAMP)
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# libp2p's fastecdsa compiles against GMP: install the headers once, only if they are missing.
$(GMP_STAMP):
	@mkdir -p $(STAMP)
	@dpkg -s libgmp-dev >/dev/null 2>&1 || ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq libgmp-dev)
	@touch $@

$(VENV_STAMP): pyproject.toml | $(GMP_STAMP)
	@mkdir -p $(STAMP)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@# libp2p depends on trio-typing, whose stale trio-stubs would shadow trio's own inline types in mypy
	rm -rf "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/trio-stubs"
	@touch $@

setup: $(NPM_STAMP) $(VENV_STAMP) ## install npm packages and the Python venv (idempotent)

build: $(NPM_STAMP) ## compile the contracts (forge via the solcjs shim; its output on stderr)
	@forge build >&2
	@# the ABIs an installed `synod` reads (protocol/artifacts/abi/), not the working directory
	@$(PYTHON) scripts/export_abi.py

# `make test` runs the fast path (every test but the whole-network suites: markers fault, adversary,
# e2e), well under 15 minutes here; SYNOD_TEST_ALL=1 (set by .ci/run, which CI runs) or `make test-all`
# runs everything.
ifeq ($(SYNOD_TEST_ALL),1)
PYTEST_SELECT :=
else
PYTEST_SELECT := -m "not (fault or adversary or e2e)"
endif

test: setup build test-shim test-contracts test-python ## shim, forge, pytest (fast path; CI runs test-all)

test-all: ## every test, the fault, adversary and e2e suites included (what CI runs; about 22 min here from a fresh clone)
	@$(MAKE) --no-print-directory test SYNOD_TEST_ALL=1

test-shim: $(NPM_STAMP)
	node --test tools/

test-contracts: $(NPM_STAMP)
	forge test

test-python: $(VENV_STAMP) build
	$(PY) -m pytest $(PYTEST_SELECT) --durations=25

test-adversary: $(VENV_STAMP) build ## dishonest nodes and validators vs real daemons, token conservation
	$(PY) -m pytest -m adversary

demo: setup build ## the whole network on this machine turns bundled passages into a verified Q&A dataset (demo-out/)
	$(PY) -m devnet.demo --out demo-out

bench: setup build ## print name=value performance figures (gas, workflow engine, local model, p2p, watcher)
	@$(PY) -m scripts.bench_gas
	@$(PY) -m scripts.bench_workflow --no-model
	@$(PY) -m scripts.bench_model
	@$(PY) -m scripts.bench_p2p
	@$(PY) -m scripts.bench_watcher
	@$(PY) -m scripts.bench_node
	@$(PY) -m scripts.bench_scoring
	@$(PY) -m scripts.bench_qa --only qa  # Q&A quality on tests/data/qa_passages.jsonl (slow: runs the model)
	@$(PY) -m scripts.bench_data  # persona_dialogue and extract_record on the same passages (slow: runs the model)
	@$(PY) -m scripts.bench_devnet --model scripted --tasks 1000  # devnet_tasks_per_min= (protocol only: one_generation on the scripted model, B=128; about 1.5 min here incl. start-up)
	@$(PY) -m scripts.bench_devnet --model local --tasks 12       # devnet_tasks_per_min_local_model=

lint: setup ## ruff, mypy (strict), forge fmt --check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	forge fmt --check

fmt: setup ## format Python and Solidity
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .
	forge fmt

audit: $(NPM_STAMP) ## slither in its own venv (web3 < 8); fails on medium+, see docs/audit.md
	@test -x .venv-audit/bin/slither || ($(PYTHON) -m venv .venv-audit && .venv-audit/bin/pip install --quiet slither-analyzer==0.11.6)
	@# slither runs `forge clean` + `forge build`: hold the lock other forge users take.
	flock /tmp/synod-forge.lock .venv-audit/bin/slither . --config-file slither.config.json

mutation: $(NPM_STAMP) ## mutation testing of the contracts (minutes; not part of `make test`)
	python3 scripts/mutation.py

clean: ## remove build output (not the venvs)
	rm -rf out cache deployments/31337.json
