# The two commands: `make up` (the stack, locally) and `make test` (the whole suite).
# Both set everything up themselves: Java/Maven if missing, the venv, packages, Kafka jars.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)

.PHONY: up down test lint unit bench chaos install prereqs schemas constraints clean

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

bench: install
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
	$(PY) -m bench

# The fault suite at full size (make test runs it at scale 1: 20,000 events, 5 faults);
# the figures go to bench/results/chaos.json.
chaos: install
	TIERSTREAM_CHAOS_SCALE=$${TIERSTREAM_CHAOS_SCALE:-5} $(PY) -m pytest tests/e2e/test_chaos.py -s -p no:randomly --timeout=3600

schemas: install
	$(PY) -m schemas.generate

install: prereqs $(STAMP)

# constraints.txt pins every package to the versions the suite passed with
# (refresh: `make constraints` after changing pyproject.toml).
$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	@rm -f $(VENV)/.installed-*
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
