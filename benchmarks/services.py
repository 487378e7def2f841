"""What the benchmark starts and stops: demo API processes, the embedded Postgres, measurement children."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import requests

from benchmarks.measure import CONTACTS_PATH, PAGE_SIZE, RESULT_PREFIX
from devtools.embedded_postgres import free_port

ROOT = Path(__file__).resolve().parent.parent
_START_TIMEOUT = 30.0


class ChildError(RuntimeError):
    """A measurement process failed; the message carries the end of its stderr."""


class DemoApiProcess:
    """``python -m devtools.demo_api --port P --records N [--latency S]`` in its own process, stopped on exit."""

    def __init__(self, records: int, latency: float = 0.0) -> None:
        self.records = records
        self.latency = latency
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        """Start the server and wait until it answers its health check."""
        command = [sys.executable, "-m", "devtools.demo_api", "--port", str(self.port), "--records", str(self.records)]
        command += ["--latency", str(self.latency)]
        self._process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                error = self._process.stderr.read().decode(errors="replace") if self._process.stderr else ""
                raise ChildError(f"demo API exited with {self._process.returncode}: {error[-2000:]}")
            try:
                if requests.get(f"{self.url}/_demo/health", timeout=1).ok:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        raise ChildError(f"demo API on port {self.port} did not answer within {_START_TIMEOUT:.0f} s")

    @property
    def pid(self) -> int | None:
        """Process id of the server, while it runs."""
        return None if self._process is None else self._process.pid

    def warm_up(self) -> int:
        """One full pass over the contacts (the server builds records lazily); returns the records seen."""
        seen = 0
        after: str | None = None
        with requests.Session() as session:
            while True:
                params: dict[str, Any] = {"limit": PAGE_SIZE} | ({"after": after} if after else {})
                response = session.get(f"{self.url}{CONTACTS_PATH}", params=params, timeout=60)
                response.raise_for_status()
                body = response.json()
                seen += len(body["results"])
                after = body.get("paging", {}).get("next", {}).get("after")
                if not after:
                    return seen

    def mutate(self, changed: int) -> int:
        """Give ``changed`` records new content upstream, then warm the server up again; returns how many."""
        response = requests.post(
            f"{self.url}/_demo/mutate", json={"changed": changed, "removed": 0, "added": 0}, timeout=60
        )
        response.raise_for_status()
        self.warm_up()
        return int(response.json()["changed"])

    def stop(self) -> None:
        """Terminate the server (kill it if it does not stop within 10 s)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


def child_environment(airflow_home: Path) -> dict[str, str]:
    """Environment of measurement children: a throw-away Airflow home, quiet logs, no telemetry."""
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home}/airflow.db",
            "AIRFLOW__CORE__DAGS_FOLDER": str(airflow_home / "dags"),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "PYTHONWARNINGS": "ignore",
            "DO_NOT_TRACK": "1",
            "SCARF_NO_ANALYTICS": "1",
            "RUNTIME__DLTHUB_TELEMETRY": "false",
        }
    )
    env.pop("_AIRFLOW_PARSING_CONTEXT_DAG_ID", None)
    env.pop("_AIRFLOW_PARSING_CONTEXT_TASK_ID", None)
    return env


def run_child(
    kind: str,
    params: dict[str, Any],
    env: dict[str, str],
    *,
    timeout: float = 600.0,
    extra_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run ``benchmarks.measure KIND`` in a fresh interpreter and return its result."""
    command = [sys.executable, "-m", "benchmarks.measure", kind, json.dumps(params)]
    completed = subprocess.run(
        command, cwd=ROOT, env=env | (extra_env or {}), capture_output=True, text=True, timeout=timeout, check=False
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if completed.returncode != 0 or not lines:
        tail = "\n".join(completed.stderr.strip().splitlines()[-15:])
        raise ChildError(f"{kind} failed (exit {completed.returncode}):\n{tail}")
    result: dict[str, Any] = json.loads(lines[-1].removeprefix(RESULT_PREFIX))
    return result
