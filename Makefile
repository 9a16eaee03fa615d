# make demo | make test | make bench — each sets up .venv itself on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint types unit bench chaos cassettes clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	bash scripts/demo.sh

test: lint types unit

lint: $(STAMP)
	$(BIN)/ruff check .

types: $(STAMP)
	$(BIN)/mypy

# Two workers (the machines have two cores), a test file each at a time: a file's module
# fixtures (its sandbox) stay in one process; each worker starts its own PostgreSQL.
unit: $(STAMP)
	$(BIN)/pytest -n 2 --dist loadfile

bench: $(STAMP)
	$(BIN)/python -m bench

# Kill the agent and fault its APIs, compare with an unhurt twin (about 12 minutes; part of
# `make bench` too). `$(BIN)/python -m bench.bench_chaos --quick` is a smoke run.
chaos: $(STAMP)
	$(BIN)/python -m bench.bench_chaos

# Re-record tests/cassettes from the sandbox (not part of `make test`, which replays them).
cassettes: $(STAMP)
	$(BIN)/python -m tests.record_cassettes

clean:
	rm -rf $(VENV) .stagesync .pytest_cache .mypy_cache .ruff_cache
