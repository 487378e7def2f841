# Everything runs from a venv in .venv, created on first use from the project's own files.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install postgres-server test test-ui lint unit demo airflow bench clean

# The editable install leaves nango_provider.egg-info in the repository's root, a build by-product: found on
# sys.path (python -m from here, pytest), it would make Airflow load the plugin twice. It is removed.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	rm -rf *.egg-info
	touch $(STAMP)

install: $(STAMP)

# Debian's PostgreSQL server (stock configuration: JIT on, fsync on), which the tests and the benchmark start
# in a temporary directory next to the embedded one; installed here (as root) when its binaries are missing.
postgres-server:
	@if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then \
	    if [ "$$(id -u)" -ne 0 ]; then \
	        echo "PostgreSQL server binaries are missing and installing them needs root: apt-get install -y postgresql" >&2; \
	        exit 1; \
	    fi; \
	    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The Celery test (marker `celery`) runs Debian's redis-server: installed here when missing (apt-get needs root).
# Without root, install it yourself or deselect the test: $(BIN)/pytest -m "not ui and not celery".
REDIS_SERVER := /usr/bin/redis-server

$(REDIS_SERVER):
	@if [ "$$(id -u)" -ne 0 ]; then \
		echo "redis-server is missing: apt-get install -y redis-server as root, or run $(BIN)/pytest -m 'not ui and not celery'" >&2; \
		exit 1; \
	fi
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server

test: lint postgres-server $(REDIS_SERVER)
	$(BIN)/pytest -m "not ui"

# The browser test: a real Airflow driven through its web UI by headless Chromium (/usr/bin/chromium,
# `apt-get install -y chromium`); screenshots of every step land in test-artifacts/.
test-ui: $(STAMP)
	$(BIN)/pytest -m ui

unit: $(STAMP)
	$(BIN)/pytest -m "not integration"

demo: $(STAMP)
	$(BIN)/python -m devtools.demo

# AIRFLOW_ARGS="--executor celery --workers 2" runs the tasks on Celery workers (needs redis-server).
airflow: $(STAMP)
	$(BIN)/python -m devtools.airflow_server $(AIRFLOW_ARGS)

bench: $(STAMP) postgres-server
	$(BIN)/pip install --quiet -r benchmarks/requirements.txt
	$(BIN)/python -m benchmarks.bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
