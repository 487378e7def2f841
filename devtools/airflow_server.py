"""A real Airflow for the REST and browser tests and ``make airflow``: API server, scheduler, DAG processor and
triggerer as subprocesses over the local environment (embedded Postgres, demo API, the example DAGs).

Airflow's metadata lives in its own database (``airflow``) of the embedded Postgres, so the three processes
and the task processes never fight over a SQLite file. Users come from the SimpleAuthManager: ``admin``
(role admin) and ``viewer`` (role viewer), each with its name as password. Every process writes its output to
``<AIRFLOW_HOME>/<component>.log``.

``python -m devtools.airflow_server [--port 8080]`` runs it until Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import psycopg
import requests

from devtools.embedded_postgres import free_port
from devtools.environment import LocalEnvironment, local_environment

COMPONENTS: Final = ("api-server", "scheduler", "dag-processor", "triggerer")
HEALTH_PARTS: Final = ("metadatabase", "scheduler", "triggerer", "dag_processor")
"""Every component of ``/api/v2/monitor/health``: each one must report ``healthy``."""
USERS: Final = {"admin": "admin", "viewer": "viewer"}
"""user name -> SimpleAuthManager role; every password is the user name."""


@dataclass
class AirflowServer:
    """The running Airflow: its URL, environment and processes, and helpers to talk to it."""

    environment: LocalEnvironment
    port: int
    env: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def home(self) -> Path:
        """``AIRFLOW_HOME``."""
        return self.environment.airflow_home

    # -- processes ------------------------------------------------------------------------------------------

    def start(self, component: str) -> None:
        """Start one component (``api-server``, ``scheduler``, ``dag-processor`` or ``triggerer``) in its own process
        group."""
        args = {"api-server": ["api-server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]}
        command = [sys.executable, "-m", "airflow", *args.get(component, [component])]
        with (self.home / f"{component}.log").open("ab") as log:
            self.processes[component] = subprocess.Popen(
                command, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def stop(self, component: str, timeout: float = 30) -> None:
        """Stop one component (SIGTERM to its process group, SIGKILL after ``timeout``)."""
        process = self.processes.pop(component, None)
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)

    def restart(self, component: str) -> None:
        """Stop and start one component; waits until the API server answers again."""
        self.stop(component)
        self.start(component)
        self.wait_until_healthy()

    def log_tail(self, component: str, lines: int = 40) -> str:
        """The last ``lines`` lines of a component's output."""
        path = self.home / f"{component}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_until_healthy(self, timeout: float = 180) -> None:
        """Wait until the API server answers and reports every component healthy (:data:`HEALTH_PARTS`)."""

        def healthy() -> bool:
            self._check_alive()
            try:
                health = requests.get(f"{self.url}/api/v2/monitor/health", timeout=5).json()
            except (requests.RequestException, ValueError):
                return False
            return all((health.get(part) or {}).get("status") == "healthy" for part in HEALTH_PARTS)

        wait_for(healthy, timeout, "Airflow to be healthy", self._diagnostics)

    def _check_alive(self) -> None:
        for component, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"{component} exited with {process.returncode}:\n{self.log_tail(component)}")

    def _diagnostics(self) -> str:
        return "\n".join(f"--- {name}.log\n{self.log_tail(name, 15)}" for name in COMPONENTS)

    # -- talking to it --------------------------------------------------------------------------------------

    def token(self, user: str = "admin", password: str | None = None) -> str:
        """A JWT from ``POST /auth/token``."""
        response = requests.post(
            f"{self.url}/auth/token", json={"username": user, "password": password or USERS[user]}, timeout=30
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    def client(self, user: str | None = "admin") -> requests.Session:
        """A ``requests`` session sending ``Authorization: Bearer <token of user>`` (anonymous with ``None``)."""
        session = requests.Session()
        if user is not None:
            session.headers["Authorization"] = f"Bearer {self.token(user)}"
        return session

    def wait_for_dag(self, dag_id: str, timeout: float = 90, *, present: bool = True) -> dict[str, Any]:
        """Wait until ``GET /api/v2/dags/<dag_id>`` finds the DAG (or, with ``present=False``, no longer does)."""
        client = self.client()
        found: dict[str, Any] = {}

        def check() -> bool:
            response = client.get(f"{self.url}/api/v2/dags/{dag_id}", timeout=30)
            if response.status_code == 200 and not response.json().get("is_stale"):
                found.update(response.json())
                return present
            return not present

        wait_for(check, timeout, f"DAG {dag_id} to be {'parsed' if present else 'gone'}", self._diagnostics)
        return found

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 180) -> str:
        """Wait until a DAG run finishes; its final state."""
        client = self.client()
        state: list[str] = []

        def finished() -> bool:
            response = client.get(f"{self.url}/api/v2/dags/{dag_id}/dagRuns/{run_id}", timeout=30)
            response.raise_for_status()
            state[:] = [response.json()["state"]]
            return state[0] in ("success", "failed")

        wait_for(finished, timeout, f"run {run_id} of {dag_id} to finish", self._diagnostics)
        return state[0]


def wait_for(
    condition: Callable[[], bool], timeout: float, what: str, diagnostics: Callable[[], str] = str, poll: float = 0.5
) -> None:
    """Poll ``condition`` until it is true; ``TimeoutError`` naming ``what`` (and diagnostics) otherwise."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}\n{diagnostics()}")
        time.sleep(poll)


def _metadata_database(postgres_uri: str) -> str:
    """Create the ``airflow`` database next to ``postgres`` and return its SQLAlchemy URL (psycopg 3)."""
    with psycopg.connect(postgres_uri, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = 'airflow'").fetchone() is None:
            conn.execute("CREATE DATABASE airflow")
    base = postgres_uri.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/airflow"


def server_environment(environment: LocalEnvironment, port: int, extra: Mapping[str, str]) -> dict[str, str]:
    """The environment of the Airflow processes: users, shared secrets, quick DAG parsing, our metadata DB."""
    passwords = environment.airflow_home / "simple_auth_manager_passwords.json.generated"
    passwords.write_text(json.dumps({user: user for user in USERS}))
    return {
        **environment.env,
        # The current folder is not put on sys.path: from the repository's root, the editable install's
        # build by-product (nango_provider.egg-info) would be found as a second copy of the distribution,
        # and Airflow would report the plugin "already registered".
        "PYTHONSAFEPATH": "1",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": _metadata_database(environment.postgres.uri),
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{user}:{role}" for user, role in USERS.items()),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "AIRFLOW__DAG_PROCESSOR__STALE_DAG_THRESHOLD": "10",
        "AIRFLOW__SCHEDULER__PARSING_CLEANUP_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_SEC": "2",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        **extra,
    }


@contextmanager
def airflow_server(
    port: int | None = None, api_records: int = 600, extra_env: Mapping[str, str] | None = None
) -> Iterator[AirflowServer]:
    """Start the local environment and Airflow on ``port`` (a free one by default); stop everything on exit."""
    with local_environment(api_records=api_records) as environment:
        port = port or free_port()
        env = server_environment(environment, port, extra_env or {})
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True)
        server = AirflowServer(environment, port, env)
        try:
            for component in COMPONENTS:
                server.start(component)
            server.wait_until_healthy()
            yield server
        finally:
            for component in reversed(COMPONENTS):
                server.stop(component)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main() -> None:
    """Run Airflow until interrupted (Ctrl-C, or SIGTERM: either stops every process it started)."""
    signal.signal(signal.SIGINT, _interrupt)  # a shell's background job starts with SIGINT ignored
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    with airflow_server(port=args.port, api_records=3000) as server:
        print(f"Airflow:  {server.url}  (users: admin/admin, viewer/viewer); Ctrl-C stops everything")
        print(f"Nango:    {server.url}/nango/ui   Postgres: {server.environment.postgres.uri}")
        print(f"Demo API: {server.environment.api.url}   logs: {server.home}/*.log")
        print(f"Syncs:    {server.env['NANGO_SYNCS_PATH']}  (add a *.yaml file there: its DAG appears within seconds)")
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)


if __name__ == "__main__":
    main()
