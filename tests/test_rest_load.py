"""The REST API under bursts, on a live Airflow (loopback, bounded): 24 concurrent creates with distinct names,
triggers, pauses and resumes, deletes, and a delete racing a create of the same name. Every answer is a 2xx or a
4xx in the API's one error shape, nothing is half-done (a sync stored without its audit row), and Airflow's own
``GET /api/v2/dags`` keeps answering promptly meanwhile (the plugin never exhausts the API server's database
pool: no session is held while another is opened, for an authorization or a connection lookup)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
import requests

from devtools.airflow_server import AirflowServer
from tests.live_airflow import live_airflow

pytestmark = pytest.mark.integration
__all__ = ["live_airflow"]  # the fixture, imported for pytest

BURST = 24
"""Concurrent requests of each kind: more than the API server's pool (5 + 10 overflow) holds."""
REQUEST_TIMEOUT = 90
AIRFLOW_API_LIMIT = 15.0
"""Seconds within which Airflow's own ``GET /api/v2/dags`` must answer while the burst runs."""
ERROR_KEYS = {"status", "code", "detail", "sync", "field"}


@dataclass
class Answer:
    """One request's outcome."""

    what: str
    status: int
    body: Any
    seconds: float


@dataclass
class Burst:
    """Runs requests concurrently, each with its own authenticated session, and keeps every answer."""

    server: AirflowServer
    answers: list[Answer] = field(default_factory=list)
    _local: threading.local = field(default_factory=threading.local)

    @property
    def base(self) -> str:
        return f"{self.server.url}/nango/v1/syncs"

    def _http(self) -> requests.Session:
        if not hasattr(self._local, "http"):
            self._local.http = self.server.client("admin")
        return self._local.http  # type: ignore[no-any-return]

    def call(self, what: str, method: str, url: str, **kwargs: Any) -> Answer:
        started = time.monotonic()
        response = self._http().request(method, url, timeout=REQUEST_TIMEOUT, **kwargs)
        try:
            body = response.json()
        except ValueError:
            body = response.text
        answer = Answer(what, response.status_code, body, time.monotonic() - started)
        self.answers.append(answer)
        return answer

    def run(self, calls: list[Callable[[], Answer]], workers: int) -> list[Answer]:
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(lambda call: call(), calls))


def body_of(server: AirflowServer, name: str) -> dict[str, Any]:
    return {"name": name, "url": f"{server.environment.api.url}/api/v2/pokemon", "frequency": None}


def audit_rows(server: AirflowServer, event: str, dag_ids: list[str]) -> dict[str, int]:
    """How many audit log rows of ``event`` each DAG has, in Airflow's metadata database."""
    uri = server.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(uri) as conn:
        rows = conn.execute(
            "SELECT dag_id, count(*) FROM log WHERE event = %s AND dag_id = ANY(%s) GROUP BY dag_id", (event, dag_ids)
        ).fetchall()
    return {dag_id: count for dag_id, count in rows}


def registry_names(server: AirflowServer) -> set[str]:
    with psycopg.connect(server.environment.postgres.uri) as conn:
        exists = conn.execute("SELECT to_regclass('nango._nango_definitions') IS NOT NULL").fetchone()
        if not exists or not exists[0]:
            return set()
        return {row[0] for row in conn.execute("SELECT name FROM nango._nango_definitions").fetchall()}


def _by_kind(answers: list[Answer]) -> dict[str, list[Answer]]:
    kinds: dict[str, list[Answer]] = {}
    for answer in answers:
        kinds.setdefault(answer.what.split()[0] + " " + answer.what.split()[1].rstrip("0123456789_"), []).append(answer)
    return kinds


def assert_no_server_errors(answers: list[Answer]) -> None:
    failed = [answer for answer in answers if not (200 <= answer.status < 300 or 400 <= answer.status < 500)]
    counts = {kind: sorted(answer.status for answer in group) for kind, group in _by_kind(failed).items()}
    assert not failed, f"{counts}: {[(answer.what, answer.status, answer.body) for answer in failed[:3]]}"
    for answer in answers:
        if answer.status >= 400:
            assert isinstance(answer.body, dict) and set(answer.body) == ERROR_KEYS, (answer.what, answer.body)


@pytest.fixture(scope="module")
def target(live_airflow: AirflowServer) -> Iterator[str]:
    """A paused, parsed API sync that is only triggered: runs of the burst are queued, never started."""
    http = live_airflow.client("admin")
    base = f"{live_airflow.url}/nango/v1/syncs"
    created = http.post(base, json=body_of(live_airflow, "load_target"), timeout=60)
    assert created.status_code == 201, created.text
    live_airflow.wait_for_dag("nango_sync_load_target", timeout=120)
    paused = http.put(base, json={"action": "pause", "sync_id": "load_target"}, timeout=60)
    assert paused.status_code == 200, paused.text
    yield "load_target"
    http.delete(f"{base}/load_target", timeout=60)


class AirflowWatch:
    """Polls Airflow's own ``GET /api/v2/dags`` until stopped; the slowest answer and every failed one."""

    def __init__(self, server: AirflowServer) -> None:
        self.server = server
        self.http = server.client("admin")
        self.stop = threading.Event()
        self.slowest = 0.0
        self.failures: list[str] = []
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                response = self.http.get(f"{self.server.url}/api/v2/dags", params={"limit": 5}, timeout=60)
                if response.status_code != 200:
                    self.failures.append(f"{response.status_code}: {response.text[:200]}")
            except requests.RequestException as error:
                self.failures.append(repr(error))
            self.slowest = max(self.slowest, time.monotonic() - started)
            self.stop.wait(0.2)

    def __enter__(self) -> AirflowWatch:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(70)


def test_bursts_of_every_kind_answer_2xx_or_4xx_and_leave_nothing_half_done(
    live_airflow: AirflowServer, target: str
) -> None:
    burst = Burst(live_airflow)
    names = [f"load_{index}" for index in range(BURST)]
    raced = [f"load_raced_{index}" for index in range(BURST // 2)]
    base = burst.base

    def create(name: str) -> Callable[[], Answer]:
        return lambda: burst.call(f"POST {name}", "POST", base, json=body_of(live_airflow, name))

    def delete(name: str) -> Callable[[], Answer]:
        return lambda: burst.call(f"DELETE {name}", "DELETE", f"{base}/{name}")

    def act(action: str) -> Callable[[], Answer]:
        return lambda: burst.call(f"PUT {action}", "PUT", base, json={"action": action, "sync_id": target})

    try:
        with AirflowWatch(live_airflow) as watch:
            created = burst.run([create(name) for name in names], BURST)
            triggered = burst.run([act("trigger") for _ in range(BURST)], BURST)
            toggled = burst.run([act("pause" if index % 2 else "resume") for index in range(BURST)], BURST)
            settled = [act("pause")(), act("cancel")()]  # the burst's runs never start
            racing = [call for name in raced for call in (create(name), delete(name))]
            raced_answers = burst.run(racing, len(racing))
            deleted = burst.run([delete(name) for name in names], BURST)
        slowest = {kind: max(answer.seconds for answer in answers) for kind, answers in _by_kind(burst.answers).items()}
        print(f"\nslowest answers (s): {slowest}; GET /api/v2/dags meanwhile: {watch.slowest:.2f} s")
        assert_no_server_errors(burst.answers)
        assert [answer.status for answer in created] == [201] * BURST
        assert [answer.status for answer in triggered] == [200] * BURST
        assert [answer.status for answer in toggled] == [200] * BURST
        assert [answer.status for answer in settled] == [200, 200]
        assert len(settled[1].body["cancelled"]) == BURST
        assert [answer.status for answer in deleted] == [200] * BURST
        assert not watch.failures, watch.failures[:3]
        assert watch.slowest < AIRFLOW_API_LIMIT, f"GET /api/v2/dags took {watch.slowest:.1f} s during the burst"

        dag_ids = [f"nango_sync_{name}" for name in names]
        assert audit_rows(live_airflow, "nango_sync_created", dag_ids) == dict.fromkeys(dag_ids, 1)
        assert audit_rows(live_airflow, "nango_sync_deleted", dag_ids) == dict.fromkeys(dag_ids, 1)
        assert audit_rows(live_airflow, "nango_sync_trigger", [f"nango_sync_{target}"]) == {
            f"nango_sync_{target}": BURST
        }

        stored = registry_names(live_airflow)
        assert not stored & set(names)
        by_name = {answer.what: answer for answer in raced_answers}
        for name in raced:
            posted, removed = by_name[f"POST {name}"], by_name[f"DELETE {name}"]
            assert posted.status == 201, posted.body
            # the delete came first (404: nothing to delete yet) or second (200: it removed the new sync)
            assert removed.status in (200, 404), removed.body
            assert (name in stored) == (removed.status == 404), (name, removed.body)
    finally:
        for name in [*names, *raced]:
            burst.call(f"cleanup {name}", "DELETE", f"{base}/{name}")
