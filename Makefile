# byzrun: `make install` once, then `make test`. Everything runs inside the virtual environment $(VENV).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# `make tables` reads $(RESULTS)/runs/ only: results/runs/ is a sweep of your own, never results/paper/
RESULTS ?= results
# where `make data` puts datasets: $$BYZRUN_DATA if set (where byzrun reads them), else data/
DATA ?= $(or $(BYZRUN_DATA),data)

.PHONY: install test test-slurm lint format bench tables clean data readme

install:  ## create $(VENV) and install byzrun (editable) with the test tools
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[dev]"

test:  ## the whole test suite, CPU only, offline (without the SLURM tests: make test-slurm)
	$(PY) -m pytest -n auto

# where scripts/local_slurm.sh keeps the local cluster (config, munge key, state, logs)
export BYZRUN_SLURM_DIR ?= /tmp/byzrun-slurm

test-slurm:  ## the SLURM tests against a one-node cluster on this machine (root): up, tests, down even when they fail
	scripts/local_slurm.sh up
	SLURM_CONF=$(BYZRUN_SLURM_DIR)/slurm.conf $(PY) -m pytest -p no:xdist -m slurm tests/test_slurm.py; \
	status=$$?; scripts/local_slurm.sh down; exit $$status

lint:  ## ruff lint and format check
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format:
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

data:  ## download MNIST, CIFAR-10, CIFAR-100 into $(DATA) (skips those present; see --help)
	$(PY) -m byzrun.fetch_data --root $(DATA)

# the revision every rule is timed against ("today" in the speed issue's targets)
BENCH_BEFORE ?= fe2263b
# where `make bench` writes its CSVs and machine.json; the README's speed numbers read results/bench
BENCH_OUT ?= bench/out

bench:  ## speed: rounds per model, every rule, every rule against $(BENCH_BEFORE) (2 threads, then 1), every rule and attack against ByzFL, what bf16 changes; CSV and machine.json in $(BENCH_OUT)
	$(PY) -m byzrun.bench.machine start --out $(BENCH_OUT)
	$(PY) -m byzrun.bench --out $(BENCH_OUT)
	$(PY) -m byzrun.bench.before --rev $(BENCH_BEFORE) --out $(BENCH_OUT)
	OMP_NUM_THREADS=1 $(PY) -m byzrun.bench.before --rev $(BENCH_BEFORE) --dims 79510 --name before_1thread.csv --out $(BENCH_OUT)
	OMP_NUM_THREADS=1 $(PY) -m byzrun.bench.byzfl --out $(BENCH_OUT)
	$(PY) -m byzrun.bench.bf16 --out $(BENCH_OUT)
	$(PY) -m byzrun.bench.machine end --out $(BENCH_OUT)

readme:  ## rewrite the README's defense and attack tables from conf/ and the classes (bounds, options), and the summary tables from results/ (then check every quoted number)
	$(PY) -m byzrun.catalog README.md
	$(PY) -m byzrun.report.quotes --write

tables:  ## tables of the runs under $(RESULTS)/runs/ only (paper tables, generic table, worst case); ARGS="--rows m --metric max"
	$(PY) -m byzrun.report --results-dir $(RESULTS) $(ARGS)

clean:
	rm -rf results/runs results/.sweeps .pytest_cache
