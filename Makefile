# Everything runs from a venv in .venv, created on first use from the project's own files.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test test-ui lint unit demo airflow bench clean

# The editable install leaves nango_provider.egg-info in the repository's root, a build by-product: found on
# sys.path (python -m from here, pytest), it would make Airflow load the plugin twice. It is removed.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	rm -rf *.egg-info
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -m "not ui"

# The browser test: a real Airflow driven through its web UI by headless Chromium (/usr/bin/chromium,
# `apt-get install -y chromium`); screenshots of every step land in test-artifacts/.
test-ui: $(STAMP)
	$(BIN)/pytest -m ui

unit: $(STAMP)
	$(BIN)/pytest -m "not integration"

demo: $(STAMP)
	$(BIN)/python -m devtools.demo

airflow: $(STAMP)
	$(BIN)/python -m devtools.airflow_server

bench: $(STAMP)
	$(BIN)/pip install --quiet -r benchmarks/requirements.txt
	$(BIN)/python -m benchmarks.bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
