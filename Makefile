# Two entry points for a fresh clone (README): `make run` and `make test`.
# Each creates the virtual environment first if it is missing or older than pyproject.toml.

PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
# Stages in dvc.yaml call `odmt`: put the environment's commands first on PATH.
export PATH := $(BIN):$(PATH)

.PHONY: run test setup

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

run: setup
	$(BIN)/dvc repro

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest
