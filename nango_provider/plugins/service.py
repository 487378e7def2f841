"""What the REST API does, without HTTP: the catalog of syncs, their runs, and the actions on them.

The catalog joins three sources by DAG id: the registry (syncs created through the API), the YAML folder
(``$NANGO_SYNCS_PATH``, when the API server can read it) and Airflow's metadata (``DagModel``: every parsed
``nango_sync_*`` DAG, paused or not). Definition errors come from Airflow's metadata too: the DAG processor
stores them as the import error of ``nango_sync_errors.py`` (``ParseImportError``), which the API server reads
wherever it runs. Runs come from ``nango._nango_jobs`` in each sync's database. Every use of Airflow's
internals (its metadata, its trigger and "mark as failed" services, the parsing requests of the "Reparse"
button) goes through :mod:`nango_provider.plugins.airflow_internals`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import quote

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from nango_provider.dag_factory import ERRORS_FILE_NAME
from nango_provider.definition import DAG_ID_PREFIX as DAG_PREFIX
from nango_provider.definition import SyncDefinition, iter_definitions_file, refuse_unknown_params
from nango_provider.exceptions import (
    InvalidSyncDefinitionsError,
    StoreError,
    SyncDefinitionError,
    SyncNotFoundError,
    SyncStateError,
    TriggerParamsError,
)
from nango_provider.plugins import airflow_internals as airflow
from nango_provider.plugins.airflow_internals import DagInfo
from nango_provider.store.registry import SOURCE as REGISTRY_SOURCE
from nango_provider.store.registry import SyncRegistry, connection_factory

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

HISTORY_LENGTH: Final = 20
"""How many recent runs (tries) of each sync the API returns for the chart."""
_JOB_COLUMNS: Final = (
    "run_id",
    "try_number",
    "status",
    "started_at",
    "ended_at",
    "pages",
    "fetched",
    "added",
    "updated",
    "unchanged",
    "deleted",
    "error",
)
# warnings and connection_id read through to_jsonb: a jobs table made before those columns existed has none until
# its next run
_HISTORY: Final = """
SELECT dag_id, {columns}, to_jsonb(recent) -> 'warnings' AS warnings,
       to_jsonb(recent) ->> 'connection_id' AS connection_id FROM (
    SELECT *, row_number() OVER (PARTITION BY dag_id ORDER BY started_at DESC, id DESC) AS position
    FROM nango._nango_jobs WHERE dag_id = ANY(%s)
) recent WHERE position <= %s ORDER BY dag_id, started_at, id
"""
_LATEST_BY_CONNECTION: Final = """
SELECT dag_id, connection_id, {columns}, to_jsonb(latest) -> 'warnings' AS warnings FROM (
    SELECT DISTINCT ON (dag_id, connection_id) * FROM nango._nango_jobs
    WHERE dag_id = ANY(%s) AND connection_id IS NOT NULL
    ORDER BY dag_id, connection_id, started_at DESC, id DESC
) latest ORDER BY dag_id, connection_id
"""
Source = Literal["api", "yaml", "dag_file"]


@dataclass
class SyncEntry:
    """One sync in the catalog: where it is defined, its definition when known, and its DAG when parsed."""

    name: str
    source: Source
    definition: SyncDefinition | None = None
    defined_in: str | None = None
    dag: DagInfo | None = None
    created_at: datetime | None = None
    runs: list[dict[str, Any]] = field(default_factory=list)
    dag_run: dict[str, Any] | None = None
    connection_runs: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def dag_id(self) -> str:
        """``nango_sync_<name>``."""
        return f"{DAG_PREFIX}{self.name}"

    def as_json(self) -> dict[str, Any]:
        """The API's view of the sync (definition with secrets hidden, state, last run and recent runs)."""
        definition = self.definition
        return {
            "id": self.name,
            "dag_id": self.dag_id,
            "source": self.source,
            "defined_in": self.defined_in,
            "definition": definition.redacted() if definition else None,
            "table": ".".join(definition.qualified_table) if definition else None,
            "schedule": _schedule_text(definition, self.dag),
            "parsed": self.dag is not None,
            "is_paused": self.dag.is_paused if self.dag else None,
            "has_import_errors": self.dag.has_import_errors if self.dag else False,
            "next_run_after": self.dag.next_run_after if self.dag else None,
            "created_at": self.created_at,
            "last_run": self._last_run(),
            "last_dag_run": self.dag_run,
            "connections": self.connection_runs or None,
            "history": self.runs,
        }

    def _last_run(self) -> dict[str, Any] | None:
        """The latest try; a failed try whose task waits for its next one (``up_for_retry``) is ``retrying``."""
        if not self.runs:
            return None
        last = self.runs[-1]
        dag_run = self.dag_run or {}
        if last["status"] == "failed" and dag_run.get("retrying") and dag_run.get("run_id") == last["run_id"]:
            return {**last, "status": "retrying"}
        return last


def _schedule_text(definition: SyncDefinition | None, dag: DagInfo | None) -> str | None:
    """``every 30m`` for a duration (as written), else the cron expression or preset (Airflow's summary for
    DAGs the catalog has no definition of)."""
    if definition is None:
        return dag.schedule if dag else None
    if isinstance(definition.frequency, str) or definition.frequency is None:
        return definition.frequency  # a cron expression, a preset, or None: only triggered
    return f"every {definition.frequency_as_written}"


# -- the catalog --------------------------------------------------------------------------------------------


@dataclass
class Catalog:
    """Every sync the API server can see, the problems it met while looking (``errors``) and the import errors
    of the DAG files that build or report syncs (``import_errors``: definitions that could not be loaded)."""

    entries: dict[str, SyncEntry]
    errors: list[str]
    import_errors: list[str] = field(default_factory=list)

    @property
    def all_errors(self) -> list[str]:
        """Import errors first, then the API server's own problems (each once: both may see a bad stored sync)."""
        return list(dict.fromkeys([*self.import_errors, *self.errors]))

    def get(self, name: str) -> SyncEntry:
        """The sync ``name``; raises :class:`SyncNotFoundError`."""
        if name not in self.entries:
            raise SyncNotFoundError(name)
        return self.entries[name]

    def owner_of_table(self, definition: SyncDefinition) -> SyncEntry | None:
        """The sync, other than ``definition``'s, whose records land in the same table, if there is one."""
        for entry in self.entries.values():
            if (
                entry.definition
                and entry.name != definition.name
                and entry.definition.table_key == definition.table_key
            ):
                return entry
        return None

    def add_runs(self, session: Session | None, names: Iterable[str], default_conn_id: str) -> list[SyncEntry]:
        """Fill in the recent runs and the latest DAG run of the syncs ``names``; returns those entries.

        Without a ``session``, one short session of its own reads the DAG runs (after the sync databases)."""
        chosen = {name: self.entries[name] for name in names}
        _add_runs(chosen, default_conn_id, self.errors)
        with metadata(session, "reading the latest DAG runs") as current:
            _add_dag_runs(chosen, current)
        return list(chosen.values())


@contextmanager
def metadata(session: Session | None, doing: str) -> Iterator[Session]:
    """``session`` when given, else a short session of Airflow's metadata database, committed on exit (see
    :func:`airflow_internals.metadata_session`)."""
    if session is not None:
        yield session
        return
    with airflow.metadata_session(doing) as own:
        yield own


def load_catalog(session: Session | None = None, *, registry: SyncRegistry) -> Catalog:
    """Join the YAML folder, the registry and Airflow's DAGs (runs are added with :meth:`Catalog.add_runs`).

    Without a ``session``, Airflow's metadata is read in one short session of its own, after the registry (whose
    connection lookup may need a session of its own: one request never holds two)."""
    entries: dict[str, SyncEntry] = {}
    errors: list[str] = []
    _add_yaml_syncs(entries)
    registry_read = _add_registry_syncs(entries, registry, errors)
    with metadata(session, "reading the sync DAGs") as current:
        dags, import_errors = dag_infos(current), definition_errors(current)
    _add_dags(entries, dags, deleted_api_syncs_known=registry_read)
    return Catalog(dict(sorted(entries.items())), errors, import_errors)


def definition_errors(session: Session) -> list[str]:
    """The import errors Airflow recorded for ``nango_sync_errors.py`` (every sync definition that could not be
    loaded, one line each) and for any DAG file of sync DAGs; empty when every definition loads."""
    sync_files = airflow.dag_files(session, DAG_PREFIX, include_stale=True)
    found: list[str] = []
    for bundle_name, filename, stacktrace in airflow.import_errors(session):
        if _is_errors_file(filename):
            found.extend(_reported_lines(filename, stacktrace))
        elif (bundle_name, filename) in sync_files:
            found.append(f"{filename}: import error: {_last_line(stacktrace)}")
    return found


def _is_errors_file(relative_fileloc: str) -> bool:
    return Path(relative_fileloc).name == ERRORS_FILE_NAME


_REPORTED: Final = f"{InvalidSyncDefinitionsError.__module__}.{InvalidSyncDefinitionsError.__qualname__}: "


def _reported_lines(filename: str, stacktrace: str) -> list[str]:
    """The problems of an :class:`InvalidSyncDefinitionsError` from the stored traceback (or bare message)."""
    if _REPORTED in stacktrace:
        return InvalidSyncDefinitionsError.lines_of(stacktrace.rpartition(_REPORTED)[2])
    if stacktrace.startswith("Traceback"):  # the file failed for another reason
        return [f"{filename}: import error: {_last_line(stacktrace)}"]
    return InvalidSyncDefinitionsError.lines_of(stacktrace)


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no detail)"


def _add_yaml_syncs(entries: dict[str, SyncEntry]) -> None:
    """Definitions of the YAML folder, when this machine can read it (invalid ones are the DAG file's errors);
    ``defined_in`` is the file's path relative to the folder (no server path is shown)."""
    folder = os.environ.get("NANGO_SYNCS_PATH")
    if not folder or not Path(folder).is_dir():
        return
    root = Path(folder)
    for path in sorted(root.rglob("*")):
        if path.suffix not in (".yaml", ".yml") or not path.is_file():
            continue
        try:
            loaded = list(iter_definitions_file(path))
        except SyncDefinitionError:
            continue
        for item in loaded:
            if isinstance(item, SyncDefinition) and item.name not in entries:
                entries[item.name] = SyncEntry(item.name, "yaml", item, defined_in=path.relative_to(root).as_posix())


def _add_registry_syncs(entries: dict[str, SyncEntry], registry: SyncRegistry, errors: list[str]) -> bool:
    """Add the API-created syncs; whether the registry could be read."""
    try:
        stored = list(registry.iter_definitions())
    except StoreError as error:
        errors.append(str(error))
        return False
    for item in stored:
        if isinstance(item, SyncDefinitionError):
            errors.append(str(item))
        elif item.name not in entries:  # a YAML sync of the same name wins, as in the DAG factory
            entries[item.name] = SyncEntry(
                item.name, "api", item.definition, defined_in=REGISTRY_SOURCE, created_at=item.created_at
            )
    return True


def _add_dags(entries: dict[str, SyncEntry], dags: Mapping[str, DagInfo], *, deleted_api_syncs_known: bool) -> None:
    """Attach each parsed DAG to its sync; a DAG of an API sync no longer in the registry was deleted (it goes
    stale at the DAG processor's next cleanup) and is left out."""
    for dag_id, info in dags.items():
        name = dag_id.removeprefix(DAG_PREFIX)
        from_api = "api" in info.tags
        if name not in entries and from_api and deleted_api_syncs_known:
            continue
        entry = entries.setdefault(name, SyncEntry(name, "api" if from_api else "dag_file"))
        entry.dag = info
        entry.defined_in = entry.defined_in or info.relative_fileloc  # relative to its DAG bundle


def dag_infos(session: Session, dag_ids: Iterable[str] | None = None) -> dict[str, DagInfo]:
    """The parsed, not stale ``nango_sync_*`` DAGs (or just ``dag_ids``), by DAG id."""
    return airflow.dag_infos(session, DAG_PREFIX, None if dag_ids is None else list(dag_ids))


def _add_runs(entries: Mapping[str, SyncEntry], default_conn_id: str, errors: list[str]) -> None:
    """Recent rows of ``nango._nango_jobs``, read from each sync's database (one query per database)."""
    by_conn: dict[str, list[SyncEntry]] = {}
    for entry in entries.values():
        conn_id = entry.definition.postgres_conn_id if entry.definition else default_conn_id
        by_conn.setdefault(conn_id, []).append(entry)
    for conn_id, group in by_conn.items():
        try:
            history = job_history(conn_id, [entry.dag_id for entry in group])
            per_connection = [entry.dag_id for entry in group if entry.definition and entry.definition.connections]
            latest = connection_history(conn_id, per_connection) if per_connection else {}
        except (StoreError, psycopg.Error) as error:
            errors.append(f"runs of {', '.join(entry.name for entry in group)}: {error}")
            continue
        for entry in group:
            entry.runs = history.get(entry.dag_id, [])
            entry.connection_runs = latest.get(entry.dag_id, {})


def job_history(conn_id: str, dag_ids: Sequence[str], limit: int = HISTORY_LENGTH) -> dict[str, list[dict[str, Any]]]:
    """The last ``limit`` job rows (one per try) of each DAG, oldest first; none before the first run."""
    history: dict[str, list[dict[str, Any]]] = {}
    for row in _job_rows(conn_id, _HISTORY, (list(dag_ids), limit)):
        history.setdefault(row.pop("dag_id"), []).append(row)
    return history


def connection_history(conn_id: str, dag_ids: Sequence[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """The latest job row (try) of each connection of each DAG of a sync with ``connections``:
    ``{dag_id: {connection_id: row}}``."""
    latest: dict[str, dict[str, dict[str, Any]]] = {}
    for row in _job_rows(conn_id, _LATEST_BY_CONNECTION, (list(dag_ids),)):
        latest.setdefault(row.pop("dag_id"), {})[row.pop("connection_id")] = row
    return latest


def _job_rows(conn_id: str, template: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
    """Rows of a query over the jobs table (``{columns}`` in ``template`` names the job columns); none while the
    table, or a column added by a later version, does not exist yet."""
    query = sql.SQL(template).format(columns=sql.SQL(", ").join(map(sql.Identifier, _JOB_COLUMNS)))
    try:
        conn = connection_factory(conn_id)()
    except psycopg.Error as error:
        raise StoreError(f"cannot connect to Postgres ({conn_id}): {error}") from error
    with conn, conn.cursor(row_factory=dict_row) as cursor:
        try:
            cursor.execute(query, params)
        except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn):
            return []
        return cursor.fetchall()


def _add_dag_runs(entries: Mapping[str, SyncEntry], session: Session) -> None:
    """The latest Airflow DAG run of each sync (queued runs have no job row yet)."""
    runs = airflow.latest_dag_runs(session, [entry.dag_id for entry in entries.values() if entry.dag])
    for dag_id, run in runs.items():
        entries[dag_id.removeprefix(DAG_PREFIX)].dag_run = run


# -- actions ------------------------------------------------------------------------------------------------


def require_dag(entry: SyncEntry) -> DagInfo:
    """The sync's DAG; raises :class:`SyncStateError` while the DAG processor has not parsed it yet."""
    if entry.dag is None:
        raise SyncStateError(
            f"the DAG {entry.dag_id} is not parsed yet (or its DAG file has an import error); retry in a few seconds"
        )
    return entry.dag


def set_paused(session: Session, dag_id: str, paused: bool, *, missing_ok: bool = False) -> None:
    """Pause or resume a DAG, as the pause toggle of the UI does."""
    try:
        airflow.set_paused(session, dag_id, paused)
    except airflow.DagNotParsedError:
        if not missing_ok:
            raise SyncStateError(f"the DAG {dag_id} is not parsed yet") from None


def trigger(session: Session, dag_id: str, conf: Mapping[str, Any] | None, user_name: str) -> dict[str, Any]:
    """Queue a manual run; raises :class:`TriggerParamsError` for a param the DAG does not have, or one its
    params refuse."""
    conf = dict(conf or {})
    try:
        known = airflow.dag_param_names(session, dag_id)
    except airflow.DagNotParsedError as error:
        raise SyncStateError(f"the DAG {dag_id} is not parsed yet: {error}") from error
    refuse_unknown_params(dag_id, conf, known)
    try:
        run_id, state = airflow.trigger_run(session, dag_id, conf, user_name)
    except airflow.DagNotParsedError as error:
        raise SyncStateError(f"the DAG {dag_id} is not parsed yet: {error}") from error
    except ValueError as error:  # the DAG's params refused a value
        raise TriggerParamsError(dag_id, None, str(error)) from error
    return {"dag_run_id": run_id, "state": state}


def cancel(session: Session, dag_id: str) -> list[str]:
    """Mark every queued or running run of the DAG failed (running tasks are stopped); their run ids."""
    return airflow.fail_active_runs(session, dag_id)


def request_reparse(session: Session) -> bool:
    """Ask the DAG processor to parse, now, the DAG files that hold sync DAGs (and ``nango_sync_errors.py`` while
    it reports errors); whether there was one to ask for.

    Before the first sync DAG exists no file is known, and the file is picked up at its next regular parse
    (``[dag_processor] min_file_process_interval``).
    """
    files = airflow.dag_files(session, DAG_PREFIX, include_stale=False)
    failing = {(bundle, name) for bundle, name, _ in airflow.import_errors(session) if _is_errors_file(name)}
    return airflow.request_parse(session, files | failing)


def audit(session: Session, event: str, dag_id: str, user_name: str, **extra: Any) -> None:
    """An entry in Airflow's audit log (Browse > Audit Log), without the definition (it may hold secrets)."""
    airflow.add_audit_log(session, f"nango_{event}", dag_id, user_name, extra)


# -- one sync's runs and the user's permissions ---------------------------------------------------------------

RUNS_LIMIT: Final = 200
"""The most runs (tries) ``GET /v1/syncs/{id}/runs`` returns at once."""
_RUNS: Final = """
SELECT to_jsonb(job) - 'id' AS job FROM nango._nango_jobs job
WHERE dag_id = %s ORDER BY started_at DESC, id DESC LIMIT %s
"""


def add_latest_dag_run(session: Session, entry: SyncEntry) -> None:
    """Fill in the sync's latest Airflow DAG run (whether a try of it waits for its retry, among others)."""
    _add_dag_runs({entry.name: entry}, session)


def sync_runs(entry: SyncEntry, default_conn_id: str, limit: int) -> list[dict[str, Any]]:
    """The last ``limit`` tries of the sync, newest first: every column of ``nango._nango_jobs`` (what a newer
    schema adds comes along), the duration in seconds, ``retrying`` for the failed try that waits for its
    retry, and the paths of its Airflow run and task log in Airflow's UI (relative to the UI's root)."""
    conn_id = entry.definition.postgres_conn_id if entry.definition else default_conn_id
    try:
        conn = connection_factory(conn_id)()
    except psycopg.Error as error:
        raise StoreError(f"cannot connect to Postgres ({conn_id}): {error}") from error
    with conn, conn.cursor() as cursor:
        try:
            cursor.execute(_RUNS, (entry.dag_id, limit))
        except psycopg.errors.UndefinedTable:
            return []
        rows = [row[0] for row in cursor.fetchall()]
    retrying_run = (entry.dag_run or {}).get("run_id") if (entry.dag_run or {}).get("retrying") else None
    shown = [_run_json(entry.dag_id, row) for row in rows]
    for run in shown:  # only the newest try of the waiting run is retrying; its older tries failed for good
        if run["run_id"] == retrying_run and run["status"] == "failed":
            run["status"] = "retrying"
            break
    return shown


def _run_json(dag_id: str, row: dict[str, Any]) -> dict[str, Any]:
    started, ended = _timestamp(row.get("started_at")), _timestamp(row.get("ended_at"))
    run = {**row, "duration_seconds": (ended - started).total_seconds() if started and ended else None}
    if row.get("run_id"):
        run_path = f"dags/{quote(dag_id, safe='')}/runs/{quote(row['run_id'], safe='')}"
        task_path = f"{run_path}/tasks/{quote(row.get('task_id') or 'sync', safe='')}"
        run["links"] = {"dag_run": run_path, "task_log": f"{task_path}?try_number={row.get('try_number') or 1}"}
    else:
        run["links"] = None
    return run


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    return datetime.fromisoformat(value)


ACTIONS: Final = ("pause", "resume", "trigger", "cancel")
_RUN_ACTIONS: Final[dict[str, Literal["POST", "PUT"]]] = {"trigger": "POST", "cancel": "PUT"}


def action_permissions(user: Any, entry: SyncEntry) -> dict[str, dict[str, Any]]:
    """For each action of ``PUT /v1/syncs``: whether ``user`` may do it on this sync now (``allowed``) and, when
    not, why (``reason``). The same checks as the action itself: ``PUT`` on the DAG for all four, and ``POST``
    (trigger) or ``PUT`` (cancel) on its runs."""
    name = user.get_name()
    not_parsed = None if entry.dag else "its DAG is not parsed yet (or its DAG file has an import error)"
    may_change = airflow.is_authorized_dag(user, "PUT", entry.dag_id)
    shown: dict[str, dict[str, Any]] = {}
    for action in ACTIONS:
        reason = None
        if not may_change:
            reason = f"user {name!r} may not change the DAG {entry.dag_id} (Airflow role)"
        elif action in _RUN_ACTIONS and not airflow.is_authorized_dag(
            user, _RUN_ACTIONS[action], entry.dag_id, airflow.DagAccessEntity.RUN
        ):
            verb = "trigger" if action == "trigger" else "change"
            reason = f"user {name!r} may not {verb} runs of the DAG {entry.dag_id} (Airflow role)"
        reason = reason or not_parsed
        shown[action] = {"allowed": reason is None, "reason": reason}
    return shown


_DEFINITION_LINE: Final = re.compile(
    r"^(?:(?P<file>.+?): )?sync '(?P<sync>[^']*)'(?:, field '(?P<field>[^']*)')?: (?P<message>.*)$"
)
_HINT: Final = re.compile(r"[;,.]\s*(?P<hint>(?:did you mean|set|use|see|expected) .*)$", re.IGNORECASE)


def structured_error(line: str) -> dict[str, Any]:
    """One definition error as its parts: ``file`` (relative to the syncs folder when inside it), ``sync``,
    ``field``, ``message`` and ``hint`` (the suggestion that ends the message, if any); ``text`` is the line
    itself. A line of another form (the registry cannot be read, a DAG file's import error) has only ``text``
    and ``message``."""
    found = _DEFINITION_LINE.match(line)
    if found is None:
        return {"text": line, "file": None, "sync": None, "field": None, "message": line, "hint": None}
    message = found["message"]
    hint_found = _HINT.search(message)
    hint = hint_found["hint"] if hint_found else None
    if hint_found:
        message = message[: hint_found.start()]
    return {
        "text": line,
        "file": _shown_file(found["file"]),
        "sync": found["sync"],
        "field": found["field"],
        "message": message,
        "hint": hint,
    }


def _shown_file(file: str | None) -> str | None:
    folder = os.environ.get("NANGO_SYNCS_PATH")
    if file and folder and Path(file).is_absolute():
        try:
            return Path(file).relative_to(folder).as_posix()
        except ValueError:
            return Path(file).name
    return file
