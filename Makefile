# make demo | make test | make bench — each sets up .venv itself on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint types unit bench cassettes clean

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

unit: $(STAMP)
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python -m bench

# Re-record tests/cassettes from the sandbox (not part of `make test`, which replays them).
cassettes: $(STAMP)
	$(BIN)/python -m tests.record_cassettes

clean:
	rm -rf $(VENV) .stagesync .pytest_cache .mypy_cache .ruff_cache
