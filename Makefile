# byzrun: `make install` once, then `make test`. Everything runs inside the virtual environment $(VENV).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install test lint format bench tables clean

install:  ## create $(VENV) and install byzrun (editable) with the test tools
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[dev]"

test:  ## the whole test suite, CPU only, offline
	$(PY) -m pytest

lint:  ## ruff lint and format check
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format:
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

bench:  ## speed of the hot path (batched gradients, aggregation rules)
	$(PY) -m byzrun.bench

tables:  ## collect results/**/summary.csv into the papers' tables
	$(PY) scripts/make_tables.py

clean:
	rm -rf results/runs results/.sweeps .pytest_cache
