# Two entry points for a fresh machine: `make run` (set up, then launch the lab on its default
# experiment) and `make test` (set up, then run the whole test suite).
# torch is installed first and only when missing, pinned to a release whose CPU build pip finds
# locally here; a venv that already has torch (a CUDA build, say) keeps it. Override with
# `make TORCH=torch==X.Y.Z`.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: run test lint bench clean

$(BIN)/descentlab: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

run: $(BIN)/descentlab
	$(BIN)/descentlab

test: $(BIN)/descentlab
	$(BIN)/ruff check .
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

lint: $(BIN)/descentlab
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(BIN)/descentlab
	$(BIN)/python benchmarks/runner_overhead.py

clean:
	rm -rf $(VENV) build *.egg-info
