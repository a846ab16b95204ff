# The two commands: `make run` (set up and start the service) and `make test` (the whole suite).
SHELL := /bin/bash
# Python 3.12: `python3.12` if it runs, else a pyenv-installed 3.12 (pyenv's shim may refuse).
PYTHON ?= $(shell for p in python3.12 $$HOME/.pyenv/versions/3.12*/bin/python3.12 /usr/bin/python3.12 /usr/local/bin/python3.12; do \
	$$p -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1 && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP := $(VENV)/.dev-installed

export TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/moverz
export TEST_REDIS_URL ?= redis://127.0.0.1:6379/0

.PHONY: run test chaos check lint format bench install install-dev clean

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "Python 3.12 not found: install it or pass PYTHON=/path/to/python3.12"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUNTIME_STAMP): requirements.lock | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.lock
	touch $@

$(DEV_STAMP): requirements.lock requirements-dev.lock | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.lock
	touch $(RUNTIME_STAMP) $@

install: $(RUNTIME_STAMP)
install-dev: $(DEV_STAMP)

## run: install, migrate, create the demo user, start web + worker (+ a private Redis if needed)
run: $(RUNTIME_STAMP)
	$(BIN)/python scripts/run.py

## test: the whole suite against PostgreSQL and Redis (TEST_DATABASE_URL, TEST_REDIS_URL), but
## the fault suite, which has its own target (`.ci/run` runs both)
test: $(DEV_STAMP)
	$(BIN)/python -m pytest -m "not chaos" --ignore=tests/chaos $(PYTEST_ARGS)

## chaos: the fault suite (tests/chaos): real web, workers, Redis and provider processes, broken
## on purpose; one line per scenario, figures in docs/reliability.md
chaos: $(DEV_STAMP)
	$(BIN)/python -m pytest tests/chaos -m chaos -p no:cacheprovider $(PYTEST_ARGS)

## bench: the benchmark suite (bench/); writes bench/results/ and the table of docs/benchmarks.md
bench: $(DEV_STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

## check: linters, formatter, types, the layer rule (lint-imports), migrations
check: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	DEBUG=1 $(BIN)/mypy .
	DEBUG=1 $(BIN)/lint-imports
	DEBUG=1 $(BIN)/python manage.py makemigrations --check --dry-run
	DEBUG=1 $(BIN)/python manage.py spectacular --validate --fail-on-warn --file /dev/null

lint: check

format: $(DEV_STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
