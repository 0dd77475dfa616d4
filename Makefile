# The README contract: `make demo` and `make test` work on a fresh machine (they build .venv when missing).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test lint demo bench chaos sim clean help up status maintain

help:
	@echo "make demo   - run the pipeline end to end on the embedded exchange simulator"
	@echo "make test   - run the test suite"
	@echo "make lint   - ruff (lint + format check), mypy, and the import layers (.importlinter)"
	@echo "make bench  - print throughput and memory figures"
	@echo "make chaos  - soak (10 min), SIGKILLs, unwritable lake, maintenance under load, fuzzing; one table"
	@echo "make sim    - run the exchange simulator in the foreground (Ctrl-C stops it)"
	@echo "make up     - Prefect server + workers (WORKERS=N) + deployments + alerts + simulator + stream shards"
	@echo "make status - lake health: completeness, open gaps, commit age (exit 1 if unhealthy)"
	@echo "make maintain - compact small files, vacuum, checkpoint every table"
	@echo "make clean  - remove the virtual environment and the default lake's contents"

venv: $(STAMP)

# Rebuilt when pyproject.toml changes; `pip install -e .[test,lint]` installs the pinned dependencies, the test
# and lint tools, and the `cryptolake` command into .venv.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,lint]"
	@touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

# CI runs it before the tests; any finding fails. LINT_PATHS are the code ruff reads (mypy's are in mypy.ini).
LINT_PATHS := pipeline flows contracts tests benchmarks
lint: $(STAMP)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

demo: $(STAMP)
	$(BIN)/cryptolake demo

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

# CHAOS_ARGS="--minutes 30" for a longer soak, "--quick" for the compressed run `make test` also covers.
chaos: $(STAMP)
	$(BIN)/python -m pipeline.chaos $(CHAOS_ARGS)

sim: $(STAMP)
	$(BIN)/cryptolake sim

clean:
	rm -rf $(VENV)
	find lake -mindepth 1 ! -name README.md -exec rm -rf {} +

# WORKERS=N: N process workers on the pool (the stream's shards spread over them); default 1.
WORKERS ?= 1
up: $(STAMP)
	$(BIN)/cryptolake up --workers $(WORKERS)

status: $(STAMP)
	$(BIN)/cryptolake status

maintain: $(STAMP)
	$(BIN)/cryptolake maintain
