# The README contract: `make demo` and `make test` work on a fresh machine (they build .venv when missing).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test demo bench sim clean help

help:
	@echo "make demo   - run the pipeline end to end on the embedded exchange simulator"
	@echo "make test   - run the test suite"
	@echo "make bench  - print throughput and memory figures"
	@echo "make sim    - run the exchange simulator in the foreground (Ctrl-C stops it)"
	@echo "make clean  - remove the virtual environment and the default lake's contents"

venv: $(STAMP)

# Rebuilt when pyproject.toml changes; `pip install -e .` installs the pinned dependencies and the
# `cryptolake` command into .venv.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	@touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/cryptolake demo

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

sim: $(STAMP)
	$(BIN)/cryptolake sim

clean:
	rm -rf $(VENV)
	find lake -mindepth 1 ! -name README.md -exec rm -rf {} +
