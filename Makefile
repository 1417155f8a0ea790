# The two commands: `make up` (the stack, locally) and `make test` (the whole suite).
# Both set everything up themselves: Java/Maven if missing, the venv, packages, Kafka jars.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
# the scorer's compiled core (native/, Rust + PyO3), rebuilt when its sources change
NATIVE := $(VENV)/.native-$(shell cat native/Cargo.toml native/Cargo.lock native/pyproject.toml native/*.pyi native/src/*.rs | cksum | cut -d' ' -f1)
# the benchmarks' quix-streams peer runs in a virtualenv of its own (bench/peer/requirements.txt)
PEER_VENV  := $(VENV)/peer
PEER_STAMP := $(PEER_VENV)/.installed-$(shell cat bench/peer/requirements.txt | cksum | cut -d' ' -f1)

.PHONY: up down test lint unit bench bench-peer chaos install prereqs schemas constraints clean

up: install
	$(PY) -m devstack up

down:
	@if [ -x $(PY) ]; then $(PY) -m devstack down; else echo "nothing to stop"; fi

test: lint
	$(PY) -m pytest

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(VENV)/bin/lint-imports
	$(PY) -m schemas.generate --check

unit: install
	$(PY) -m pytest tests/unit

bench: install bench-peer
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
	$(PY) -m bench

# The quix-streams peer's virtualenv (bench/peer/): quixstreams caps pydantic below the
# product's pin, so it cannot join $(VENV); `python -m bench.declared` needs it too.
bench-peer: install $(PEER_STAMP)

$(PEER_STAMP): bench/peer/requirements.txt | $(STAMP)
	$(PYTHON) -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/python -m pip install -q --upgrade pip
	$(PEER_VENV)/bin/python -m pip install -q -r bench/peer/requirements.txt
	@rm -f $(PEER_VENV)/.installed-*
	@touch $@

# The fault suite at full size (make test runs it at scale 1: 20,000 events, 5 faults);
# the figures go to bench/results/chaos.json.
chaos: install
	TIERSTREAM_CHAOS_SCALE=$${TIERSTREAM_CHAOS_SCALE:-5} $(PY) -m pytest tests/e2e/test_chaos.py -s -p no:randomly --timeout=3600

schemas: install
	$(PY) -m schemas.generate

install: prereqs $(STAMP) $(NATIVE)

# constraints.txt pins every package to the versions the suite passed with
# (refresh: `make constraints` after changing pyproject.toml).
$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

# The compiled core: built by maturin (a build dependency, from PyPI) with cargo, crates from
# crates.io; the first build takes a minute, later ones only recompile what changed.
$(NATIVE): $(STAMP)
	@command -v cargo >/dev/null || { echo "the scorer's compiled core needs Rust (cargo, rustc >= 1.80): https://rustup.rs"; exit 1; }
	$(PY) -m pip install -q ./native
	@rm -f $(VENV)/.native-*
	@touch $@

# Kafka runs from its Maven Central jars: it needs a JRE 17+ and Maven. Prometheus (and
# promtool, for the alert rules' tests) comes from Debian's package.
prereqs:
	@command -v java >/dev/null && command -v mvn >/dev/null || { \
	  echo "installing Java 17 and Maven (Debian packages)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless maven; }
	@command -v prometheus >/dev/null && command -v promtool >/dev/null || { \
	  echo "installing Prometheus (Debian package)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; }

constraints: install
	$(PY) -m pip freeze --exclude-editable | grep -v '^-e' > constraints.txt

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
