"""A real Airflow for ``make airflow`` and the live tests: API server, scheduler, DAG processor and
triggerer as subprocesses over the local environment (embedded Postgres, demo API, the example DAGs).

Airflow's metadata lives in its own database (``airflow``) of the embedded Postgres, so the three processes
and the task processes never fight over a SQLite file. Users come from the SimpleAuthManager: ``admin``
(role admin), ``viewer`` (role viewer) and ``editor`` (role user), each with its name as password. Every process
writes its output to ``<AIRFLOW_HOME>/<component>.log``.

Tasks run with the LocalExecutor (in the scheduler's children), or with ``executor="celery"`` on Celery workers:
a private Redis is the broker, and each worker is an ``airflow celery worker`` with an ``AIRFLOW_HOME``, working
directory and temporary folder of its own, sharing nothing with the others but the DAGs folder and the databases
(as workers on separate machines would); it writes ``<its home>/worker.log`` and its task logs under its home.

``python -m devtools.airflow_server [--port 8080] [--executor celery --workers 2]`` runs it until Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import psycopg
import requests

from devtools.embedded_postgres import free_port
from devtools.environment import LocalEnvironment, local_environment
from devtools.redis_server import RedisServer

COMPONENTS: Final = ("api-server", "scheduler", "dag-processor", "triggerer")
HEALTH_PARTS: Final = ("metadatabase", "scheduler", "triggerer", "dag_processor")
"""Every component of ``/api/v2/monitor/health``: each one must report ``healthy``."""
EXECUTORS: Final = {"local": "LocalExecutor", "celery": "CeleryExecutor"}
"""``executor`` argument -> Airflow's executor class name."""
USERS: Final = {"admin": "admin", "viewer": "viewer", "editor": "user"}
"""user name -> SimpleAuthManager role; every password is the user name. ``editor`` may create and run DAGs but
not read connections."""


@dataclass
class AirflowServer:
    """The running Airflow: its URL, environment and processes, and helpers to talk to it."""

    environment: LocalEnvironment
    port: int
    env: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    workers: dict[str, CeleryWorker] = field(default_factory=dict)

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
        """Wait until the API server answers and reports every component healthy (:data:`HEALTH_PARTS`), and
        every Celery worker is ready."""

        def healthy() -> bool:
            self._check_alive()
            if not all(worker.ready() for worker in self.workers.values()):
                return False
            try:
                health = requests.get(f"{self.url}/api/v2/monitor/health", timeout=5).json()
            except (requests.RequestException, ValueError):
                return False
            return all((health.get(part) or {}).get("status") == "healthy" for part in HEALTH_PARTS)

        wait_for(healthy, timeout, "Airflow to be healthy", self.diagnostics)

    def _check_alive(self) -> None:
        for component, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"{component} exited with {process.returncode}:\n{self.log_tail(component)}")

    def diagnostics(self) -> str:
        """The last lines of every component's and worker's log."""
        logs = [f"--- {name}.log\n{self.log_tail(name, 15)}" for name in COMPONENTS]
        logs += [f"--- {name}/worker.log\n{worker.log_tail(15)}" for name, worker in self.workers.items()]
        return "\n".join(logs)

    # -- Celery workers -------------------------------------------------------------------------------------

    def start_worker(self, name: str, concurrency: int = 2) -> CeleryWorker:
        """Start a Celery worker named ``name`` in a home of its own (``wait_until_healthy`` waits until ready)."""
        home = Path(tempfile.mkdtemp(prefix=f"nango-{name}-"))
        env = {**self.env, "AIRFLOW_HOME": str(home), "TMPDIR": str(home)}
        command = [sys.executable, "-m", "airflow", "celery", "worker", "--celery-hostname", f"{name}@%h"]
        command += ["--concurrency", str(concurrency), "--skip-serve-logs", "--without-mingle", "--without-gossip"]
        with (home / "worker.log").open("ab") as log:
            process = subprocess.Popen(
                command, cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        worker = self.workers[name] = CeleryWorker(name, home, process)
        return worker

    def kill_worker(self, name: str) -> None:
        """SIGKILL a worker and every process it started (its tasks too), as if its machine died."""
        self.workers[name].kill()

    def stop_workers(self) -> None:
        """Stop every worker (SIGTERM, SIGKILL after 30 s) and remove its home."""
        for worker in self.workers.values():
            worker.stop()
        self.workers.clear()

    # -- talking to it --------------------------------------------------------------------------------------

    def token(self, user: str = "admin", password: str | None = None) -> str:
        """A JWT from ``POST /auth/token``."""
        response = requests.post(
            f"{self.url}/auth/token", json={"username": user, "password": password or user}, timeout=30
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

        wait_for(check, timeout, f"DAG {dag_id} to be {'parsed' if present else 'gone'}", self.diagnostics)
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

        wait_for(finished, timeout, f"run {run_id} of {dag_id} to finish", self.diagnostics)
        return state[0]


@dataclass
class CeleryWorker:
    """One ``airflow celery worker``: its name, its own ``AIRFLOW_HOME`` (also its working directory) and process."""

    name: str
    home: Path
    process: subprocess.Popen[bytes]

    def ready(self) -> bool:
        """Whether Celery has logged that the worker is ready; ``RuntimeError`` when it exited."""
        if self.process.poll() is not None:
            raise RuntimeError(f"worker {self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
        log = self.home / "worker.log"
        return log.exists() and " ready." in log.read_text(errors="replace")

    def task_logs(self, dag_id: str, run_id: str) -> list[Path]:
        """The task log files this worker wrote for one DAG run (one ``attempt=<n>.log`` per try it ran)."""
        return sorted((self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}").glob("task_id=*/attempt=*.log"))

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the worker's output."""
        log = self.home / "worker.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""

    def kill(self) -> None:
        """SIGKILL the worker and every process it started, as its machine dying would: the Celery parent, its
        pool and the task processes (which Airflow puts in process groups of their own, in the worker's session).
        """
        for pid in session_members(self.process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM (a warm shutdown), SIGKILL after ``timeout``; then remove the home."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.kill()  # pool or task processes left behind
        shutil.rmtree(self.home, ignore_errors=True)


def session_members(session_id: int) -> list[int]:
    """The processes of a session (``start_new_session=True`` made the worker its leader)."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.getsid(int(entry.name)) == session_id:
                    members.append(int(entry.name))
    return members


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


def server_environment(
    environment: LocalEnvironment, port: int, extra: Mapping[str, str], executor: str = "local"
) -> dict[str, str]:
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
        "AIRFLOW__CORE__EXECUTOR": EXECUTORS[executor],
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


def celery_environment(broker: RedisServer) -> dict[str, str]:
    """Settings of every process (workers too) for the CeleryExecutor: the broker; results in the metadata DB.

    The task heartbeat timeout is short (30 s rather than 5 min), so that a task whose worker died is failed and
    retried soon.
    """
    return {
        "AIRFLOW__CELERY__BROKER_URL": broker.url,
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
        "AIRFLOW__CELERY__SYNC_PARALLELISM": "1",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
    }


@contextmanager
def airflow_server(
    port: int | None = None,
    api_records: int = 600,
    extra_env: Mapping[str, str] | None = None,
    *,
    executor: str = "local",
    workers: int = 2,
) -> Iterator[AirflowServer]:
    """Start the local environment and Airflow on ``port`` (a free one by default); stop everything on exit.

    ``executor`` is ``local`` (the LocalExecutor) or ``celery``: then a private Redis and ``workers`` Celery
    workers (``worker-1``, ...) start too. ``extra_env`` overrides any setting (e.g. the DAGs folder).
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {sorted(EXECUTORS)}, not {executor!r}")
    with local_environment(api_records=api_records) as environment, ExitStack() as stack:
        port = port or free_port()
        celery = celery_environment(stack.enter_context(RedisServer())) if executor == "celery" else {}
        env = server_environment(environment, port, {**celery, **(extra_env or {})}, executor)
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True)
        server = AirflowServer(environment, port, env)
        try:
            for component in COMPONENTS:
                server.start(component)
            for number in range(1, workers + 1 if executor == "celery" else 1):
                server.start_worker(f"worker-{number}")
            server.wait_until_healthy()
            yield server
        finally:
            server.stop_workers()
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
    parser.add_argument("--executor", choices=sorted(EXECUTORS), default="local")
    parser.add_argument("--workers", type=int, default=2, help="Celery workers (with --executor celery)")
    args = parser.parse_args()
    with airflow_server(port=args.port, api_records=3000, executor=args.executor, workers=args.workers) as server:
        print(f"Airflow:  {server.url}  (users: admin/admin, viewer/viewer); Ctrl-C stops everything")
        for worker in server.workers.values():
            print(f"Worker:   {worker.name}  home: {worker.home}")
        print(f"Nango:    {server.url}/nango/ui   Postgres: {server.environment.postgres.uri}")
        print(f"Demo API: {server.environment.api.url}   logs: {server.home}/*.log")
        print(f"Syncs:    {server.env['NANGO_SYNCS_PATH']}  (add a *.yaml file there: its DAG appears within seconds)")
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)


if __name__ == "__main__":
    main()
