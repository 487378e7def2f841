"""Shared fixtures: a real Postgres (embedded unless NANGO_TEST_POSTGRES_URI names one), a stock Debian
PostgreSQL server with its default configuration (JIT on) for plan tests, a loopback HTTP server with per-test
routes, and an Airflow home with a migrated SQLite metadata DB for ``dag.test()``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="nango-airflow-"))
os.environ.update(
    {
        "AIRFLOW_HOME": str(_AIRFLOW_HOME),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_AIRFLOW_HOME}/airflow.db",
        "AIRFLOW__CORE__DAGS_FOLDER": str(_AIRFLOW_HOME / "dags"),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    }
)

from devtools.demo_api import DemoApi, tenant_connections  # noqa: E402
from devtools.embedded_postgres import EmbeddedPostgres  # noqa: E402
from devtools.stock_postgres import StockPostgres  # noqa: E402
from tests.fixture_server import FixtureServer  # noqa: E402
from tests.helpers import EXAMPLES, AirflowRunner  # noqa: E402


@pytest.fixture(scope="session")
def postgres_uri() -> Iterator[str]:
    """URI of a Postgres for the whole test session."""
    external = os.environ.get("NANGO_TEST_POSTGRES_URI")
    if external:
        yield external
        return
    server = EmbeddedPostgres().start()
    try:
        yield server.uri
    finally:
        server.stop()


@pytest.fixture
def db(postgres_uri: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A clean database (no ``nango`` or test schemas) and ``postgres_default`` pointing at it."""
    import psycopg

    with psycopg.connect(postgres_uri, autocommit=True) as conn:
        schemas = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname = 'nango' OR nspname LIKE 'test\\_%'"
        ).fetchall()
        for (schema,) in schemas:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    monkeypatch.setenv("AIRFLOW_CONN_POSTGRES_DEFAULT", postgres_uri)
    return postgres_uri


@pytest.fixture(scope="session")
def stock_postgres_uri() -> Iterator[str]:
    """URI of Debian's PostgreSQL server, started for the session with its default configuration (JIT on).

    It also loads ``pg_stat_statements`` with planning times tracked, so that tests can read what the
    statements a sync sent cost to plan and whether they were JIT-compiled. ``make test`` installs the
    server package where it is missing.
    """
    settings = {"shared_preload_libraries": "pg_stat_statements", "pg_stat_statements.track_planning": "on"}
    server = StockPostgres(settings).start()
    try:
        yield server.uri
    finally:
        server.stop()


@pytest.fixture(scope="session")
def _fixture_server() -> Iterator[FixtureServer]:
    server = FixtureServer().start()
    yield server
    server.stop()


@pytest.fixture
def api(_fixture_server: FixtureServer) -> Iterator[FixtureServer]:
    """The loopback HTTP server, with no routes; each test adds its own."""
    _fixture_server.reset()
    yield _fixture_server
    _fixture_server.reset()


@pytest.fixture(scope="session")
def _migrated_airflow() -> Path:
    dags = _AIRFLOW_HOME / "dags"
    dags.mkdir(exist_ok=True)
    for example in EXAMPLES.glob("*.py"):
        (dags / example.name).symlink_to(example)
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True, env=os.environ.copy()
    )
    return dags


@pytest.fixture
def airflow_dag_folder(_migrated_airflow: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test DAG folder (the examples), reading syncs from the test's ``tmp_path``."""
    monkeypatch.setenv("NANGO_SYNCS_PATH", str(tmp_path))
    return _migrated_airflow


@pytest.fixture
def airflow(_migrated_airflow: Path, db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AirflowRunner:
    """Run DAGs with ``dag.test()``: the DAG folder holds the examples, syncs come from ``syncs_path``."""
    syncs = tmp_path / "syncs"
    syncs.mkdir()
    monkeypatch.setenv("NANGO_SYNCS_PATH", str(syncs))
    return AirflowRunner(_migrated_airflow, syncs)


@pytest.fixture(scope="session")
def _demo_api() -> Iterator[DemoApi]:
    with DemoApi(records=600) as api:
        yield api


@pytest.fixture
def demo_api(_demo_api: DemoApi, monkeypatch: pytest.MonkeyPatch) -> DemoApi:
    """The local demo API (reset to its initial data), reachable as connection ``nango_demo_api``; its tenants as
    ``demo_tenant_acme``, ``demo_tenant_globex`` and ``demo_tenant_initech``."""
    _demo_api.reset()
    monkeypatch.setenv("AIRFLOW_CONN_NANGO_DEMO_API", json.dumps({"conn_type": "nango", "host": _demo_api.url}))
    for name, value in tenant_connections(_demo_api.url).items():
        monkeypatch.setenv(name, value)
    return _demo_api
