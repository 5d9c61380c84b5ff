# The two commands a newcomer needs: `make run` (install, train, evaluate, serve) and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
CONFIG ?= training/configs/sample.toml

.PHONY: run test install train evaluate serve lint benchmark clean

$(BIN)/bazkhord: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The CPU build of torch first (on this machine's disk); anything else could pull a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/bazkhord

train: install
	$(BIN)/bazkhord train --config $(CONFIG)

evaluate: install
	$(BIN)/bazkhord evaluate sample --data data/samples/feedback_test.jsonl --split test

serve: install
	$(BIN)/bazkhord serve --model sample --host $(HOST) --port $(PORT)

run: train evaluate serve

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check . && $(BIN)/mypy data model training evaluation service

benchmark: install
	$(BIN)/python -m evaluation.benchmarks.baseline

clean:
	rm -rf artifacts .pytest_cache .mypy_cache .ruff_cache
