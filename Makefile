# Two entry points for a fresh machine: `make run` (set up, then launch the lab on its default
# experiment) and `make test` (set up, then run the whole test suite).
# torch is installed first and only when missing, pinned to a release whose CPU build pip finds
# locally here; a venv that already has torch (a CUDA build, say) keeps it. Override with
# `make TORCH=torch==X.Y.Z`.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: run test lint typecheck bench clean

$(BIN)/descentlab: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

run: $(BIN)/descentlab
	$(BIN)/descentlab

test: lint typecheck
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

lint: $(BIN)/descentlab
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy resolves `descentlab.engine` through a tree of links named as the package installs
# (pyproject's package-dir mapping), so the engine and plugins are checked with their real
# import names. The app is skipped: PySide6 and pyqtgraph type it only in part.
TYPECHECK_TREE := build/typecheck
typecheck: $(BIN)/descentlab
	mkdir -p $(TYPECHECK_TREE)/descentlab
	for d in app engine plugins assets; do ln -sfn $(CURDIR)/$$d $(TYPECHECK_TREE)/descentlab/$$d; done
	MYPYPATH=$(TYPECHECK_TREE) $(BIN)/mypy -p descentlab.engine -p descentlab.plugins

bench: $(BIN)/descentlab
	$(BIN)/python benchmarks/runner_overhead.py

clean:
	rm -rf $(VENV) build *.egg-info
