"""Hopeless errors end the task at once, without Airflow's retries; transient ones keep them and resume.

Runs real Airflow (``airflow dags test`` and ``dag.test()``) with the DAG factory's default retries (3, from
30 s apart): a retried hopeless error would leave four tries and minutes of waiting, not one try.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from airflow.models import DagRun

from nango_provider.exceptions import (
    HttpError,
    NangoError,
    PaginationError,
    RecordError,
    ResponseError,
    StoreError,
    SyncDefinitionError,
)
from tests.fixture_server import FixtureServer, Reply, Request
from tests.helpers import AirflowRunner, airflow_dags_test, jobs, rows

pytestmark = pytest.mark.integration


def items_yaml(url: str, **extra: str) -> str:
    """A YAML sync ``items`` of ``url`` with a page cursor; ``extra`` fields override or add."""
    fields = {
        "url": url,
        "unique_key": "id",
        "paging_request_path": "page",
        "paging_response_path": "next_page",
        **extra,
    }
    return "syncs:\n  items:\n" + "".join(f"    {key}: {value}\n" for key, value in fields.items())


def test_airflow_dags_test_on_a_looping_cursor_fails_in_seconds_with_one_try(
    airflow: AirflowRunner, db: str, api: FixtureServer
) -> None:
    api.route("GET", "/forever", lambda request: Reply(json={"results": [{"id": 1}], "next_page": "same"}))
    airflow.write_syncs(items_yaml(f"{api.url}/forever"))

    started = time.monotonic()
    result = airflow_dags_test("nango_sync_items")
    elapsed = time.monotonic() - started

    output = result.stdout + result.stderr
    assert "paging in a loop" in output and "AirflowFailException" in output, output[-3000:]
    # One try: a retry would come 30 s after it, and the three retries after more than 3 minutes.
    assert [(job["status"], job["try_number"]) for job in jobs(db)] == [("failed", 1)]
    assert "returned the cursor 'same' again" in jobs(db)[0]["error"]
    dag_run = max(DagRun.find(dag_id="nango_sync_items"), key=lambda run: run.start_date)
    ((ti),) = dag_run.get_task_instances()
    assert (dag_run.state, ti.state, ti.try_number) == ("failed", "failed", 1)
    print(f"airflow dags test: {elapsed:.1f} s in all, the task {ti.duration:.1f} s, the DAG run "
          f"{(dag_run.end_date - dag_run.start_date).total_seconds():.1f} s")  # fmt: skip
    assert elapsed < 150, f"airflow dags test took {elapsed:.0f} s"  # mostly the CLI starting on a busy machine


def looping(api: FixtureServer, monkeypatch: pytest.MonkeyPatch) -> str:
    api.route("GET", "/items", lambda request: Reply(json={"results": [{"id": 1}], "next_page": "same"}))
    return items_yaml(f"{api.url}/items")


def missing_response_path(api: FixtureServer, monkeypatch: pytest.MonkeyPatch) -> str:
    api.route("GET", "/items", lambda request: Reply(json={"data": [{"id": 1}]}))
    return items_yaml(f"{api.url}/items", response_path="records")


def not_found(api: FixtureServer, monkeypatch: pytest.MonkeyPatch) -> str:
    api.route("GET", "/items", lambda request: Reply(404, {"error": "no such list"}))
    return items_yaml(f"{api.url}/items")


def record_without_key(api: FixtureServer, monkeypatch: pytest.MonkeyPatch) -> str:
    api.route("GET", "/items", lambda request: Reply(json={"results": [{"name": "no id"}]}))
    return items_yaml(f"{api.url}/items")


def definition_error_after_rendering(api: FixtureServer, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AIRFLOW_VAR_NANGO_ITEMS_URL", "ftp://example.com/items")
    return items_yaml('"{{ var.value.nango_items_url }}"')


@pytest.mark.parametrize(
    ("cause", "error"),
    [
        (looping, "PaginationError: sync 'items': page 2 returned the cursor 'same' again"),
        (missing_response_path, "ResponseError: sync 'items': page 1: response_path 'records' is not in the response"),
        (not_found, "HttpError: sync 'items': GET"),
        (record_without_key, "RecordError: sync 'items': page 1, record 0"),
        (definition_error_after_rendering, "SyncDefinitionError: task 'sync': sync 'items', field 'url': expected"),
    ],
    ids=lambda value: getattr(value, "__name__", "error"),
)
def test_a_hopeless_error_fails_the_task_without_retry_and_is_in_the_jobs_table(
    airflow: AirflowRunner,
    db: str,
    api: FixtureServer,
    monkeypatch: pytest.MonkeyPatch,
    *,
    cause: Callable[[FixtureServer, pytest.MonkeyPatch], str],
    error: str,
) -> None:
    airflow.write_syncs(cause(api, monkeypatch))

    started = time.monotonic()
    dag_run = airflow.run("nango_sync_items")

    assert dag_run.state == "failed"
    ((ti),) = dag_run.get_task_instances()
    assert (ti.state, ti.try_number) == ("failed", 1)
    (job,) = jobs(db)
    assert (job["status"], job["try_number"]) == ("failed", 1)
    assert job["error"].startswith(error), job["error"]
    assert time.monotonic() - started < 30  # the first retry would only start after 30 s


class FailingOnce:
    """Three pages of a page cursor; page 2 answers 500 until the first try has failed, then 200."""

    def __init__(self, api: FixtureServer) -> None:
        self.served: list[tuple[int, int]] = []
        self.failures = 1
        api.route("GET", "/items", self.handle)

    def handle(self, request: Request) -> Reply:
        number = int(request.query.get("page", "1"))
        if number == 2 and self.failures:
            self.failures -= 1
            self.served.append((number, 500))
            return Reply(500, {"error": "busy"})
        self.served.append((number, 200))
        following = number + 1 if number < 3 else None
        return Reply(json={"results": [{"id": number * 10 + i} for i in range(2)], "next_page": following})


FAST_RETRY_DAG_FILE = """# An Airflow DAG file: a sync with the factory's retries, one second apart instead of 30.
import os
from datetime import timedelta

from nango_provider.dag_factory import DEFAULT_TASK_ARGS, nango_sync

fast_retries = {**DEFAULT_TASK_ARGS, "retry_delay": timedelta(seconds=1), "retry_exponential_backoff": False}
flaky = nango_sync(
    "flaky",
    os.environ["FLAKY_URL"],
    unique_key="id",
    paging_request_path="page",
    paging_response_path="next_page",
    request_retries=0,
    dag_kwargs={"default_args": fast_retries},
)
"""


@pytest.fixture
def fast_retry_dag(airflow: AirflowRunner, api: FixtureServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("FLAKY_URL", f"{api.url}/items")
    dag_file = airflow.dags / "flaky_sync.py"
    dag_file.write_text(FAST_RETRY_DAG_FILE, encoding="utf-8")
    yield dag_file
    dag_file.unlink()


def test_a_500_then_200_is_retried_by_airflow_and_resumes_from_the_checkpoint(
    airflow: AirflowRunner, db: str, api: FixtureServer, fast_retry_dag: Path
) -> None:
    server = FailingOnce(api)

    dag_run = airflow.run("nango_sync_flaky")

    assert dag_run.state == "success"
    assert server.served == [(1, 200), (2, 500), (2, 200), (3, 200)]
    failed, succeeded = jobs(db)
    assert (failed["status"], failed["try_number"], failed["pages"]) == ("failed", 1, 1)
    assert "answered 500" in failed["error"]
    assert (succeeded["status"], succeeded["try_number"], succeeded["resumed_from_page"]) == ("success", 2, 2)
    assert (succeeded["pages"], succeeded["fetched"]) == (3, 6)
    assert len(rows(db, "nango.flaky")) == 6


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (HttpError("x", status=0), True),
        (HttpError("x", status=408), True),
        (HttpError("x", status=429), True),
        (HttpError("x", status=500), True),
        (HttpError("x", status=503), True),
        (HttpError("x", status=400), False),
        (HttpError("x", status=401), False),
        (HttpError("x", status=404), False),
        (HttpError("x", status=0, retryable=False), False),
        (ResponseError("x"), False),
        (ResponseError("x", retryable=True), True),
        (PaginationError("x"), False),
        (RecordError("x"), False),
        (SyncDefinitionError("s", "url", "x"), False),
        (StoreError("x"), True),
    ],
    ids=repr,
)
def test_errors_say_whether_they_are_retryable(error: NangoError, retryable: bool) -> None:
    assert error.retryable is retryable


@pytest.mark.parametrize(
    ("error", "fails_without_retry"),
    [
        (PaginationError("loop", sync="items"), True),
        (SyncDefinitionError("items", "url", "bad"), True),
        (HttpError("404", status=404), True),
        (HttpError("503", status=503), False),
        (StoreError("lost the connection to Postgres"), False),
        (ConnectionResetError("not the project's own error"), False),
    ],
    ids=repr,
)
def test_the_operator_turns_only_hopeless_errors_into_a_failure_without_retry(
    error: Exception, fails_without_retry: bool
) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from nango_provider.operators.sync import _hopeless_errors_fail_without_retry

    def execute(operator: object, context: object) -> dict[str, int]:
        raise error

    with pytest.raises(Exception) as raised:
        _hopeless_errors_fail_without_retry(execute)(None, {})  # type: ignore[arg-type]

    if fails_without_retry:
        assert isinstance(raised.value, AirflowFailException) and raised.value.__cause__ is error
        assert str(raised.value).startswith(f"{type(error).__name__}: {error} (not retried")
    else:
        assert raised.value is error
