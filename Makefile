# Developer commands. Every target creates .venv on first use, so each works on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PLUGIN_DIRS := $(patsubst %/pyproject.toml,%,$(wildcard plugins/*/pyproject.toml))
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check

DIST ?= dist

.PHONY: demo test check lint types docs bench bench-smoke install install-dev dist clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

install: $(BIN)/python
	$(PIP) -e .

install-dev: $(BIN)/python
	$(PIP) -e ".[testing,docker,otel]" -r requirements/dev.txt $(foreach dir,$(PLUGIN_DIRS),-e $(dir))

## dist: the wheels of polystore-sdk and of every backend plugin, in $(DIST)/
dist: $(BIN)/python
	rm -rf $(DIST)
	$(BIN)/python -m pip wheel --quiet --disable-pip-version-check --no-deps \
		--wheel-dir $(DIST) . $(PLUGIN_DIRS)

## demo: the embedded default (SQLite under ./.polystore), no server needed
demo: install
	$(BIN)/polystore demo

## test: lint, types, docs, then the whole test suite against private real servers
test: install-dev lint types docs
	$(BIN)/python -m pytest

check: test

lint: install-dev
	$(BIN)/ruff check polystore tests plugins benchmarks examples conftest.py
	$(BIN)/ruff format --check polystore tests plugins benchmarks examples conftest.py

types: install-dev
	$(BIN)/mypy --strict polystore $(foreach dir,$(PLUGIN_DIRS),$(dir)/src)

docs: install-dev
	$(BIN)/mkdocs build --strict --quiet --site-dir $(VENV)/site

bench: install-dev
	$(BIN)/python -m benchmarks

bench-smoke: install-dev
	$(BIN)/python -m benchmarks --smoke

clean:
	rm -rf $(VENV) $(DIST) .polystore .pytest_cache .mypy_cache .ruff_cache
