# One virtualenv, created on demand, used by every target.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
PYTHON ?= python3

.PHONY: install test lint typecheck pytest demo bench airflow local clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip uv
	$(BIN)/uv pip install -q --python $(PY) -e '.[test]'
	@bash .ci/browser.sh
	touch $@

lint: install
	$(BIN)/ruff check .
	$(BIN)/airflow-ssm-delegate lint airflow_ssm_delegate/documents/runbooks/*.yaml

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck pytest

demo: install
	$(PY) -m airflow_ssm_delegate.local.demo

bench: install
	$(PY) benchmarks/run.py

airflow: install
	$(PY) -m airflow_ssm_delegate.local.demo --airflow

local: install
	$(BIN)/ssm-delegate-local --port 4566

clean:
	rm -rf $(VENV) .airflow .mypy_cache .ruff_cache .pytest_cache build *.egg-info
