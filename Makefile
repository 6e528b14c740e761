# Two entry points (see README): `make demo` and `make test`.
# Each creates .venv on first use with only Python and pip.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint venv clean

$(BIN)/arraystore: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

venv: $(BIN)/arraystore

demo: venv
	bash examples/demo.sh

test: venv
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: venv
	$(BIN)/ruff check arraystore tests benchmarks examples tools
	$(BIN)/ruff format --check arraystore tests benchmarks examples tools
	$(BIN)/mypy arraystore
	$(BIN)/lint-imports --no-cache
	$(BIN)/python tools/check_sizes.py
	$(BIN)/python tools/check_local_imports.py

clean:
	rm -rf $(VENV) demo.store demo.store.stats.json
