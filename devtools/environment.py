"""The local environment shared by ``make demo`` and ``make airflow``: embedded Postgres, the demo API,
and the Airflow settings that point the example DAGs at them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from devtools.demo_api import DemoApi, tenant_connections
from devtools.embedded_postgres import EmbeddedPostgres

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "dags_examples"


@dataclass
class LocalEnvironment:
    """What is running: the database, the demo API, and the environment for Airflow commands."""

    postgres: EmbeddedPostgres
    api: DemoApi
    airflow_home: Path
    env: dict[str, str]

    def airflow(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run an ``airflow`` CLI command in this environment, capturing its output."""
        return subprocess.run(
            [sys.executable, "-m", "airflow", *args], env=self.env, capture_output=True, text=True, check=check
        )


@contextmanager
def local_environment(api_records: int = 3000, api_port: int = 0) -> Iterator[LocalEnvironment]:
    """Start Postgres and the demo API, migrate a throwaway Airflow home; stop and remove it all on exit."""
    with (
        tempfile.TemporaryDirectory(prefix="nango-airflow-") as home,
        EmbeddedPostgres() as postgres,
        DemoApi(records=api_records, port=api_port) as api,
    ):
        env = {
            **os.environ,
            "AIRFLOW_HOME": home,
            "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLES),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "AIRFLOW_CONN_POSTGRES_DEFAULT": postgres.uri,
            "AIRFLOW_CONN_NANGO_DEMO_API": json.dumps({"conn_type": "nango", "host": api.url}),
            **tenant_connections(api.url),
            "NANGO_SYNCS_PATH": str(EXAMPLES / "syncs"),
            "PYTHONWARNINGS": "ignore",
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        }
        environment = LocalEnvironment(postgres, api, Path(home), env)
        environment.airflow("db", "migrate")
        yield environment
