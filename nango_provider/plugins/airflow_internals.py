"""Every use of Airflow's internals by the plugin, in one place.

The plugin needs more of Airflow than ``airflow.sdk`` and the documented public interface offer: the API
server's authentication (``get_user``, the auth manager), the metadata models (``DagModel``, ``DagRun``,
``TaskInstance``, ``Log``, ``ParseImportError``, ``DagPriorityParsingRequest``) and the services behind
Airflow's own REST API (``trigger_dag``, ``DBDagBag``, ``patch_dag_run_state``). None of them is promised to
stay as it is between Airflow releases, so nothing else in the project imports them: the REST API and the
catalog call the small functions below, and ``tests/test_airflow_internals.py`` checks each import, each
signature called here and each behaviour against a live Airflow. Tested with Airflow 3.3 (3.3.2); a failing
test there is the first sign that a new Airflow release changed one of them.

Only the API server imports this module (through :mod:`nango_provider.plugins.api`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from airflow.api.common.trigger_dag import trigger_dag
from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.auth.managers.models.resource_details import (
    ConnectionDetails,
    DagAccessEntity,
    DagDetails,
)
from airflow.api_fastapi.common.dagbag import DBDagBag
from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.datamodels.dag_run import DagRunMutableStates
from airflow.api_fastapi.core_api.security import get_user
from airflow.api_fastapi.core_api.services.public.dag_run import patch_dag_run_state
from airflow.configuration import conf as airflow_conf
from airflow.exceptions import AirflowNotFoundException, DagNotFound
from airflow.models.connection import Connection
from airflow.models.dag import DagModel
from airflow.models.dagbag import DagPriorityParsingRequest
from airflow.models.dagrun import DagRun
from airflow.models.errors import ParseImportError
from airflow.models.log import Log
from airflow.models.taskinstance import TaskInstance
from airflow.utils.session import create_session
from airflow.utils.state import DagRunState, TaskInstanceState
from airflow.utils.types import DagRunTriggeredByType
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from nango_provider.exceptions import StoreError, SyncStateError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

__all__ = [
    "BaseUser",
    "DagAccessEntity",
    "DagInfo",
    "DagNotParsedError",
    "SessionDep",
    "add_audit_log",
    "allowed_hosts_setting",
    "api_server_url",
    "authorized_dag_ids",
    "connection_host",
    "dag_files",
    "dag_infos",
    "dag_param_names",
    "fail_active_runs",
    "get_user",
    "import_errors",
    "is_authorized_connection",
    "is_authorized_dag",
    "latest_dag_runs",
    "login_url",
    "metadata_session",
    "request_parse",
    "set_paused",
    "trigger_run",
]

Method = Literal["GET", "POST", "PUT", "DELETE"]


class DagNotParsedError(LookupError):
    """The DAG is not in Airflow's metadata (not parsed yet, or stale); callers turn it into their own error."""


@dataclass(frozen=True)
class DagInfo:
    """What Airflow knows of a DAG."""

    is_paused: bool
    schedule: str | None
    fileloc: str | None
    bundle_name: str
    relative_fileloc: str | None
    has_import_errors: bool
    next_run_after: datetime | None
    tags: tuple[str, ...]


# -- authorization ------------------------------------------------------------------------------------------


def is_authorized_dag(user: BaseUser, method: Method, dag_id: str, entity: DagAccessEntity | None = None) -> bool:
    """Whether the auth manager lets ``user`` do ``method`` on the DAG ``dag_id`` (or on its ``entity``)."""
    details = DagDetails(id=dag_id, team_name=DagModel.get_team_name(dag_id))
    return bool(get_auth_manager().is_authorized_dag(method=method, access_entity=entity, details=details, user=user))


def authorized_dag_ids(user: BaseUser) -> set[str]:
    """The ids of the parsed DAGs ``user`` may read (one short session of its own)."""
    with metadata_session("reading the DAGs the user may read") as session:
        return set(get_auth_manager().get_authorized_dag_ids(user=user, method="GET", session=session))


def is_authorized_connection(user: BaseUser, conn_id: str | None) -> bool:
    """Whether the auth manager lets ``user`` read the Airflow connection ``conn_id`` (as its Connections page
    would: a sync that names a connection sends or writes with its secrets); ``None``: every connection."""
    team_name = Connection.get_team_name(conn_id) if conn_id is not None else None
    details = ConnectionDetails(conn_id=conn_id, team_name=team_name)
    return bool(get_auth_manager().is_authorized_connection(method="GET", details=details, user=user))


def connection_host(conn_id: str) -> tuple[str | None, int | None]:
    """The host and port of the Airflow connection ``conn_id`` as Airflow's secrets backends give them (``None``
    when the connection has none, or is not defined)."""
    try:
        found = Connection.get_connection_from_secrets(conn_id)
    except AirflowNotFoundException:
        return None, None
    return found.host or None, found.port or None


def api_server_url() -> str | None:
    """Airflow's own API server (``[api] base_url``), where a sync must not send requests unless allowed."""
    return airflow_conf.get("api", "base_url", fallback=None) or None


def allowed_hosts_setting() -> str:
    """``[nango] allowed_hosts``: the hosts syncs may send requests to (empty: any but the refused ones)."""
    return str(airflow_conf.get("nango", "allowed_hosts", fallback="") or "")


@contextmanager
def metadata_session(doing: str) -> Iterator[Session]:
    """A session of Airflow's metadata database for one short unit of work: committed on exit, rolled back on an
    error. Not the thread's scoped session, so Airflow helpers that open their own never share it; and never held
    while authorizing or looking up a connection, so a burst of requests cannot exhaust the API server's pool.

    A write that collides with a concurrent one (a unique key) is a :class:`SyncStateError` (409); any other
    database failure a :class:`StoreError` (503).
    """
    try:
        with create_session(scoped=False) as session:
            yield session
    except IntegrityError as error:
        raise SyncStateError(f"another request changed the same thing while {doing}; retry: {error.orig}") from error
    except SQLAlchemyError as error:
        raise StoreError(f"Airflow's metadata database failed while {doing}: {type(error).__name__}") from error


def login_url(next_url: str) -> str:
    """Airflow's login page, coming back to ``next_url``."""
    return str(get_auth_manager().get_url_login(next_url=next_url))


# -- reading DAGs and runs ----------------------------------------------------------------------------------


def dag_infos(session: Session, prefix: str, dag_ids: list[str] | None = None) -> dict[str, DagInfo]:
    """The parsed, not stale DAGs whose id starts with ``prefix`` (only ``dag_ids`` when given), by DAG id."""
    query = select(DagModel).where(~DagModel.is_stale, DagModel.dag_id.startswith(prefix, autoescape=True))
    if dag_ids is not None:
        query = query.where(DagModel.dag_id.in_(dag_ids))
    return {dag.dag_id: _dag_info(dag) for dag in session.scalars(query)}


def _dag_info(dag: DagModel) -> DagInfo:
    return DagInfo(
        is_paused=bool(dag.is_paused),
        schedule=dag.timetable_summary,
        fileloc=dag.fileloc,
        bundle_name=dag.bundle_name,
        relative_fileloc=dag.relative_fileloc,
        has_import_errors=bool(dag.has_import_errors),
        next_run_after=dag.next_dagrun_create_after,
        tags=tuple(sorted(tag.name for tag in dag.tags)),
    )


def latest_dag_runs(session: Session, dag_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The latest DAG run of each DAG, by DAG id: ``run_id``, ``state``, ``run_type``, dates, and ``retrying``
    (a task of the run waits for its next try, Airflow's ``up_for_retry``)."""
    if not dag_ids:
        return {}
    position = func.row_number().over(partition_by=DagRun.dag_id, order_by=DagRun.id.desc()).label("position")
    ranked = select(DagRun.id, position).where(DagRun.dag_id.in_(dag_ids)).subquery()
    latest = select(DagRun).join(ranked, ranked.c.id == DagRun.id).where(ranked.c.position == 1)
    runs = {
        run.dag_id: {
            "run_id": run.run_id,
            "state": run.state,
            "run_type": run.run_type,
            "run_after": run.run_after,
            "start_date": run.start_date,
            "end_date": run.end_date,
            "retrying": False,
        }
        for run in session.scalars(latest)
    }
    waiting = select(TaskInstance.dag_id, TaskInstance.run_id).where(
        TaskInstance.dag_id.in_(list(runs)), TaskInstance.state == TaskInstanceState.UP_FOR_RETRY
    )
    for dag_id, run_id in session.execute(waiting):
        if runs[dag_id]["run_id"] == run_id:
            runs[dag_id]["retrying"] = True
    return runs


def dag_param_names(session: Session, dag_id: str) -> list[str]:
    """The names of the params of the DAG's latest version; raises :class:`DagNotParsedError`."""
    dag = DBDagBag().get_latest_version_of_dag(dag_id, session=session)
    if dag is None:
        raise DagNotParsedError(dag_id)
    return list(dag.params.keys())


# -- actions ------------------------------------------------------------------------------------------------


def set_paused(session: Session, dag_id: str, paused: bool) -> None:
    """Pause or resume a DAG, as the pause toggle of the UI does; raises :class:`DagNotParsedError`."""
    dag = session.get(DagModel, dag_id)
    if dag is None:
        raise DagNotParsedError(dag_id)
    dag.is_paused = paused


def trigger_run(session: Session, dag_id: str, conf: Mapping[str, Any], user_name: str) -> tuple[str, str]:
    """Queue a manual run, as ``POST /api/v2/dags/{dag_id}/dagRuns`` does; its run id and state.

    Raises :class:`DagNotParsedError`, or ``ValueError`` when the DAG's params refuse ``conf``.
    """
    try:
        run = trigger_dag(
            dag_id,
            triggered_by=DagRunTriggeredByType.REST_API,
            triggering_user_name=user_name,
            conf=dict(conf),
            replace_microseconds=False,  # run ids of concurrent triggers differ
            session=session,
        )
    except DagNotFound as error:
        raise DagNotParsedError(str(error)) from error
    if run is None:
        raise DagNotParsedError(f"Airflow did not create a run of {dag_id}")
    return run.run_id, str(run.state)


def fail_active_runs(session: Session, dag_id: str) -> list[str]:
    """Mark every queued or running run of the DAG failed, as "Mark as failed" does (running tasks are
    stopped); their run ids."""
    active = select(DagRun).where(DagRun.dag_id == dag_id, DagRun.state.in_([DagRunState.QUEUED, DagRunState.RUNNING]))
    failed: list[str] = []
    dag_bag = DBDagBag()
    for run in session.scalars(active).all():
        dag = dag_bag.get_dag_for_run(run, session=session)
        if dag is None:
            continue
        patch_dag_run_state(dag=dag, dag_run=run, state=DagRunMutableStates.FAILED, session=session)
        failed.append(run.run_id)
    return failed


def dag_files(session: Session, prefix: str, *, include_stale: bool) -> set[tuple[str, str]]:
    """``(bundle_name, relative_fileloc)`` of the files that hold (or, with ``include_stale``, held) DAGs whose id
    starts with ``prefix``."""
    query = select(DagModel.bundle_name, DagModel.relative_fileloc).where(
        DagModel.dag_id.startswith(prefix, autoescape=True)
    )
    if not include_stale:
        query = query.where(~DagModel.is_stale)
    return {(bundle, fileloc) for bundle, fileloc in session.execute(query.distinct()) if bundle and fileloc}


def import_errors(session: Session) -> list[tuple[str, str, str]]:
    """Every import error the DAG processor recorded: ``(bundle_name, relative file name, stack trace)``, by file."""
    query = select(ParseImportError.bundle_name, ParseImportError.filename, ParseImportError.stacktrace)
    return [
        (bundle or "", filename, stacktrace or "")
        for bundle, filename, stacktrace in session.execute(query.order_by(ParseImportError.filename))
        if filename is not None
    ]


def request_parse(session: Session, files: Iterable[tuple[str, str]]) -> bool:
    """Ask the DAG processor to parse these ``(bundle_name, relative_fileloc)`` files now, as
    ``PUT /api/v2/parseDagFile/{file_token}`` does; whether there was a file to ask for."""
    asked = False
    for bundle_name, relative_fileloc in files:
        asked = True
        pending = select(DagPriorityParsingRequest.id).where(
            DagPriorityParsingRequest.bundle_name == bundle_name,
            DagPriorityParsingRequest.relative_fileloc == relative_fileloc,
        )
        if session.scalar(pending) is not None:
            continue
        try:
            with session.begin_nested():  # a savepoint: a concurrent request for the same file is no failure
                session.add(DagPriorityParsingRequest(bundle_name=bundle_name, relative_fileloc=relative_fileloc))
        except IntegrityError:
            continue  # asked for by a concurrent request: the file is parsed all the same
    return asked


def add_audit_log(session: Session, event: str, dag_id: str, user_name: str, extra: Mapping[str, Any]) -> None:
    """An entry in Airflow's audit log (Browse > Audit Log)."""
    session.add(Log(event=event, owner=user_name, dag_id=dag_id, extra=json.dumps(dict(extra), default=str)))
