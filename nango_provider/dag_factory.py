"""The DAG factory: sync definitions (YAML files or Python) in, one scheduled DAG per sync out.

It reads definitions (YAML files, and the syncs created through the REST API from the registry table) and
builds DAG objects; its only other I/O is that one read of the registry, bounded in time. When Airflow parses
the DAG file to run a single task, only that task's DAG is built (``get_parsing_context().dag_id``).

Definition errors never fail the DAG file that builds the syncs (Airflow would hide every DAG of a file that
fails): a second DAG file, holding no DAG, reports them as its own import error (:func:`report_definition_errors`).
"""

from __future__ import annotations

import functools
import gc
import json
import logging
import math
import os
import re
from collections.abc import Iterable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pendulum
from airflow.sdk import DAG, Asset, Param, get_parsing_context
from airflow.sdk.exceptions import AirflowFailException

from nango_provider.definition import (
    DAG_ID_PREFIX,
    MAX_BIGINT,
    SyncDefinition,
    iter_definitions_file,
    refuse_unknown_params,
)
from nango_provider.exceptions import (
    InvalidSyncDefinitionsError,
    NangoError,
    RegistryNotConfiguredError,
    StoreError,
    SyncDefinitionError,
    TriggerParamsError,
)
from nango_provider.operators.sync import NangoSyncOperator
from nango_provider.redaction import redact_url

if TYPE_CHECKING:
    from nango_provider.store.registry import PendingRead

START_DATE: Final = pendulum.DateTime(2024, 1, 1, tzinfo=pendulum.UTC)
"""2024-01-01 UTC, as the pendulum datetime each DAG converts its start to: already converted, it is taken as it is."""
DEFAULT_TASK_ARGS: Final[dict[str, Any]] = {
    "owner": "nango",
    "retries": 3,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
}
SYNCS_PATH_VARIABLE: Final = "NANGO_SYNCS_PATH"
ERRORS_FILE_NAME: Final = "nango_sync_errors.py"
"""The DAG file that reports definition errors (it calls :func:`report_definition_errors`)."""
API_TAGS: Final = ("nango", "sync", "api")
log = logging.getLogger(__name__)


def sync_asset(table: str, postgres_conn_id: str = "postgres_default") -> Asset:
    """The Asset a sync updates: schedule a downstream DAG on it (``schedule=[sync_asset("nango.pokemon")]``).

    ``table`` is ``schema.table`` (or a bare table in schema ``nango``).
    """
    schema, _, name = table.rpartition(".")
    # An ``x-`` scheme is Airflow's mark of a URI no provider normalizes: building the Asset then does not start
    # Airflow's discovery of every provider's URI handlers (about 70 ms, paid by each task that parses its DAG).
    return Asset(uri=f"x-nango://{postgres_conn_id}/{schema or 'nango'}/{name}")


def build_dag(definition: SyncDefinition, **dag_kwargs: Any) -> DAG:
    """One DAG running one :class:`NangoSyncOperator` for ``definition``, on its ``frequency``."""
    options: dict[str, Any] = {
        "dag_id": definition.dag_id,
        "schedule": definition.frequency,
        "start_date": START_DATE,
        "catchup": False,
        "max_active_runs": 1,
        "tags": ["nango", "sync"],
        "default_args": DEFAULT_TASK_ARGS,
        "description": _description(definition),
        "doc_md": _doc_md(definition),
        **dag_kwargs,
    }
    task_kwargs: dict[str, Any] = {
        "task_id": "sync",
        "full_refresh": "{{ params.full_refresh }}",
        "max_total": "{{ params.max_total }}",
        "pre_execute": refuse_unknown_run_params,
        "outlets": [sync_asset(".".join(definition.qualified_table), definition.postgres_conn_id)],
    }
    params = _params(definition)
    if "params" in options or options.get("default_args") is not DEFAULT_TASK_ARGS:
        with DAG(**({"params": params} | options)) as dag:  # the caller's params or default args: Airflow checks
            _add_sync_tasks(definition, task_kwargs)
    elif definition.connections is None:
        with DAG(**options) as dag:
            task = NangoSyncOperator.from_definition(definition, **task_kwargs)
        _add_params(dag, params, task)
    else:
        with DAG(**options) as dag:
            dag.params.update(params)
            _sync_per_connection(definition, task_kwargs)
    return dag


def _add_sync_tasks(definition: SyncDefinition, task_kwargs: dict[str, Any]) -> None:
    if definition.connections is None:
        NangoSyncOperator.from_definition(definition, **task_kwargs)
    else:
        _sync_per_connection(definition, task_kwargs)


def _add_params(dag: DAG, params: dict[str, Param], task: NangoSyncOperator) -> None:
    """``params`` added to ``dag`` and to its ``task``, once both exist, as Airflow would have added them.

    Airflow checks each param of a scheduled DAG against its schema when the DAG is built (jsonschema checking
    the schema, then the value: about a quarter of the time to build a sync's DAG), and deep-copies the DAG's
    params into each task it builds, twice (once per class of the operator). These defaults cannot fail the
    check: ``full_refresh`` is ``False`` and ``max_total`` was checked with the definition (null, or an integer
    from 1 to 2**63 - 1). And the task's copies are made here, as Airflow's deep copy makes them: a new ``Param``
    of the same value, description and schema (shared, see :class:`_SharedSchema`), marked as coming from the DAG.
    """
    dag.params.update(params)
    for name, param in params.items():
        copied = Param.__new__(Param)  # as ``copy.deepcopy`` makes it: the same attributes, no ``__init__``
        vars(copied).update(vars(param), source="dag")  # the value is a bool, an int or None: nothing to copy
        task.params[name] = copied


def _sync_per_connection(definition: SyncDefinition, task_kwargs: dict[str, Any]) -> None:
    """One mapped task per connection, shown by its connection id; a template's list is rendered when the DAG
    runs, by a task of its own (``connections``), so the list can change without a change to any file."""
    connections: Any = definition.connections
    if isinstance(connections, str):
        from nango_provider.operators.connections import NangoConnectionsOperator

        connections = NangoConnectionsOperator(
            task_id="connections", sync_name=definition.name, connections=connections, retries=0
        ).output
    else:
        connections = list(connections)
    partial = NangoSyncOperator.partial_from_definition(
        definition, map_index_template="{{ task.connection }}", **task_kwargs
    )
    partial.expand(connection=connections)


def nango_sync(name: str, url: str, **fields: Any) -> DAG:
    """The DAG of one sync, from keyword fields: the Python counterpart of ``Nango.sync(url, options)``.

    ``fields`` are the definition's fields (``response_path``, ``unique_key``, ``frequency``, ...); keyword
    arguments of ``DAG`` go in ``dag_kwargs={...}``.
    """
    dag_kwargs = fields.pop("dag_kwargs", {})
    return build_dag(SyncDefinition.from_mapping(name, {"url": url, **fields}), **dag_kwargs)


@dataclass
class FoundSyncs:
    """The valid definitions under a folder and in the registry, and every problem met while reading them."""

    definitions: list[tuple[SyncDefinition, bool]] = field(default_factory=list)
    """Each valid definition, and whether it comes from the registry (created through the REST API)."""
    errors: list[str] = field(default_factory=list)
    """One line per invalid definition: file (or registry), sync, field and what was expected."""
    registry_error: str | None = None
    """Why the registry could not be read, when it could not (its syncs are then missing)."""

    def problems(self) -> InvalidSyncDefinitionsError | None:
        """Every problem as one error, or ``None`` when there is none."""
        if not self.errors and self.registry_error is None:
            return None
        return InvalidSyncDefinitionsError(self.errors, self.registry_error)


def find_syncs(folder: str | Path | None = None, *, registry: bool = True, wanted: str | None = None) -> FoundSyncs:
    """Read and validate every sync in ``*.yaml`` / ``*.yml`` files under ``folder`` (recursively) and, with
    ``registry``, the syncs created through the REST API; build nothing.

    ``folder`` defaults to ``$NANGO_SYNCS_PATH``. With ``wanted`` (a DAG id) only that sync is read, and the
    registry only when no file defines it (a task of a YAML sync never connects to it). Otherwise the registry
    is read once, in the background while the YAML files are read, and waited for at most
    ``$NANGO_REGISTRY_TIMEOUT`` seconds (default 1) in all; when it does not answer, the YAML syncs are still
    found and ``registry_error`` says why the API-created ones are missing.
    """
    root = _syncs_folder(folder)
    found = FoundSyncs()
    pending = _start_registry_read(None) if registry and not wanted else None
    claims = _Claims()
    for path, definition in _definitions_under(root, wanted, found.errors):
        if claims.claim(definition, path, found.errors):
            found.definitions.append((definition, False))
    if registry and wanted and wanted not in claims.names:
        pending = _start_registry_read(wanted)
    if pending is not None:
        from nango_provider.store.registry import SOURCE

        for definition in _registry_definitions(pending, found):
            if claims.claim(definition, SOURCE, found.errors):
                found.definitions.append((definition, True))
    if not root.is_dir():
        found.errors.append(f"{root}: the folder of sync definitions ({SYNCS_PATH_VARIABLE}) does not exist")
    return found


def load_sync_dags(
    folder: str | Path | None = None, namespace: MutableMapping[str, Any] | None = None, *, registry: bool = True
) -> dict[str, DAG]:
    """Build the DAG of every valid sync found by :func:`find_syncs`; never fails because of a definition.

    ``folder`` defaults to ``$NANGO_SYNCS_PATH``. With ``namespace`` (a DAG file's ``globals()``) the DAGs are
    also put there for Airflow to find. API-created syncs (with ``registry``, the default) are unpaused and
    tagged ``api``. Invalid definitions and an unreachable registry are only logged here: a DAG file that fails
    makes Airflow hide every DAG of the file, so the problems are reported by another DAG file that calls
    :func:`report_definition_errors` (``nango_sync_errors.py``). When Airflow parses the file to run one task
    (``get_parsing_context().dag_id``), only that task's DAG is built.
    """
    wanted = get_parsing_context().dag_id
    dags: dict[str, DAG] = {}
    with _cycle_collection_paused():
        found = find_syncs(folder, registry=registry, wanted=wanted)
        defaults = _configured_dag_defaults()
        for definition, from_registry in found.definitions:
            extra: dict[str, Any] = {"is_paused_upon_creation": False, "tags": list(API_TAGS)} if from_registry else {}
            dags[definition.dag_id] = build_dag(definition, **defaults, **extra)
    problems = found.problems()
    if problems is not None and not wanted:
        log.warning("%s\nAirflow shows them as the import error of %s.", problems, ERRORS_FILE_NAME)
    if namespace is not None:
        namespace.update(dags)
    return dags


def report_definition_errors(folder: str | Path | None = None, *, registry: bool = True) -> None:
    """Raise :class:`InvalidSyncDefinitionsError` listing every sync that :func:`load_sync_dags` cannot load.

    Call it from a DAG file of its own (``nango_sync_errors.py`` next to ``nango_syncs.py``, same ``folder``):
    Airflow shows the error as that file's import error, which names no DAG, so no sync DAG is hidden. Once
    every definition is valid the file parses cleanly and the import error goes away.
    """
    if get_parsing_context().dag_id:
        return  # a task is being run: its DAG is not in this file
    problems = find_syncs(folder, registry=registry).problems()
    if problems is not None:
        raise problems


def _syncs_folder(folder: str | Path | None) -> Path:
    location = folder or os.environ.get(SYNCS_PATH_VARIABLE)
    if not location:
        raise NangoError(f"no folder of sync definitions: pass one, or set {SYNCS_PATH_VARIABLE}")
    return Path(location)


@dataclass
class _Claims:
    """The sync names and the tables already taken while loading, and where they were defined."""

    names: dict[str, Path | str] = field(default_factory=dict)
    tables: dict[tuple[str, str, str], tuple[str, Path | str]] = field(default_factory=dict)

    def claim(self, definition: SyncDefinition, source: Path | str, errors: list[str]) -> bool:
        """Whether ``definition``'s name and table are still free (both are then taken); if not, ``errors`` says
        which sync has them. Tables are told apart by connection id, schema and name: sync names and table names
        are at most 63 bytes, so Postgres never truncates two of them into one."""
        if definition.dag_id in self.names:
            errors.append(f"{source}: sync {definition.name!r} is already defined in {self.names[definition.dag_id]}")
            return False
        key = definition.table_key
        if key in self.tables:
            owner, where = self.tables[key]
            errors.append(
                f"{source}: sync {definition.name!r} writes to {'.'.join(key[1:])} ({key[0]}), which is the table "
                f"of sync {owner!r} in {where}: every sync needs a table of its own"
            )
            return False
        self.names[definition.dag_id] = source
        self.tables[key] = (definition.name, source)
        return True


@contextmanager
def _cycle_collection_paused() -> Iterator[None]:
    """Python's collection of reference cycles paused while the DAGs are built (and resumed if it was on).

    Building thousands of DAGs allocates millions of objects, which keeps triggering collections that walk every
    DAG built so far, and resuming collection walks every new object once more: together about a tenth of the
    time to build 5,000 sync DAGs, and they find nothing, since the DAGs stay alive. So the objects made meanwhile
    go straight into the oldest generation, unwalked (``gc.freeze()`` then ``gc.unfreeze()`` does exactly that),
    where the next full collection looks at them as usual. Not when objects are frozen already (Airflow's DAG
    processor freezes its own before it forks the process that parses a file): those stay frozen.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        if gc.get_freeze_count() == 0:
            gc.freeze()
            gc.unfreeze()
        gc.enable()


def _configured_dag_defaults() -> dict[str, Any]:
    """DAG settings whose defaults Airflow reads from its configuration, read once for all the DAGs of a folder.

    Left out, each DAG reads them again (``max_active_tasks_per_dag``, ...), which adds up over thousands of DAGs.
    """
    from airflow.sdk.configuration import conf

    return {
        "max_active_tasks": conf.getint("core", "max_active_tasks_per_dag"),
        "max_consecutive_failed_dag_runs": conf.getint("core", "max_consecutive_failed_dag_runs_per_dag"),
        "disable_bundle_versioning": conf.getboolean("dag_processor", "disable_bundle_versioning"),
    }


def _definitions_under(root: Path, wanted: str | None, errors: list[str]) -> Iterator[tuple[Path, SyncDefinition]]:
    """Valid definitions under ``root`` (only ``wanted``'s when set); the others' errors go to ``errors``."""
    for path in _definition_files(root):
        if wanted and not _may_define(path, wanted):
            continue
        try:
            loaded = list(iter_definitions_file(path))
        except SyncDefinitionError as error:
            errors.append(str(error))
            continue
        for item in loaded:
            if isinstance(item, SyncDefinitionError):
                errors.append(str(item))
            elif not wanted or item.dag_id == wanted:
                yield path, item


def _start_registry_read(wanted: str | None) -> PendingRead | None:
    """Start reading the API-created syncs (only ``wanted``'s when set); a function that waits for them.

    ``None`` when there is nothing to read: ``wanted`` is not a sync DAG, or the registry's connection is not
    defined (no API syncs). A task's parse (``wanted``) waits up to the connect timeout, as it cannot run
    without its definition; a full parse waits ``$NANGO_REGISTRY_TIMEOUT`` seconds.
    """
    if wanted and not wanted.startswith(DAG_ID_PREFIX):
        return None
    # Imported here: psycopg and Airflow's Postgres hook are not needed to build the DAG of a YAML sync's task.
    from nango_provider.store.registry import CONNECT_TIMEOUT, SyncRegistry, parse_timeout

    seconds = max(parse_timeout(), CONNECT_TIMEOUT) if wanted else parse_timeout()
    try:
        return SyncRegistry().start_reading(seconds, wanted.removeprefix(DAG_ID_PREFIX) if wanted else None)
    except RegistryNotConfiguredError:
        return None


def _registry_definitions(pending: PendingRead, found: FoundSyncs) -> Iterator[SyncDefinition]:
    """The valid API-created syncs; the invalid ones go to ``found.errors``, a failed read to ``registry_error``."""
    try:
        items = pending()
    except StoreError as error:
        found.registry_error = str(error)
        return
    for item in items:
        if isinstance(item, SyncDefinitionError):
            found.errors.append(str(item))
        else:
            yield item.definition


def _definition_files(root: Path) -> Iterable[Path]:
    if not root.is_dir():
        return []
    found = (path for path in root.rglob("*") if path.suffix in (".yaml", ".yml") and path.is_file())
    return sorted(found, key=lambda path: path.parts)  # the order of sorting the paths, without their slow compare


def _may_define(path: Path, dag_id: str) -> bool:
    """Cheap text check before parsing YAML, so building one DAG out of many files stays fast."""
    name = dag_id.removeprefix(DAG_ID_PREFIX)
    return name != dag_id and name.encode() in path.read_bytes()  # bytes: a file that is not UTF-8 is no error here


def refuse_unknown_run_params(context: Any) -> None:
    """Fail the task at once (no retry) when the run's conf has a param the DAG does not have.

    Airflow's trigger form and REST API keep unknown keys, so ``{"max_totl": 5}`` would otherwise run a full
    sync; the REST API of this plugin refuses it before the run exists.
    """
    dag_run = context["dag_run"]
    try:
        refuse_unknown_params(dag_run.dag_id, dag_run.conf or {}, list(context["dag"].params.keys()))
    except TriggerParamsError as error:
        raise AirflowFailException(str(error)) from error


# Each param declares JSON-schema draft 7: when Airflow checks a param it first checks the schema itself against
# its dialect's meta-schema, and draft 7's is one small document (the default, 2020-12, is a web of vocabularies).
_PARAM_DIALECT: Final = "http://json-schema.org/draft-07/schema#"


class _SharedSchema(dict[str, Any]):
    """A param's JSON schema, one object shared by the params of every sync DAG, and never changed.

    Airflow deep-copies a DAG's params into each of its tasks; a shared schema is not copied (its deep copy is
    itself), which took about a tenth of the time to build a sync's DAG. Changing it would change every sync
    DAG's param, so it refuses to be changed.
    """

    def __deepcopy__(self, memo: dict[int, Any]) -> _SharedSchema:
        return self

    def __reduce__(self) -> tuple[type[dict[str, Any]], tuple[dict[str, Any]]]:
        return dict, (dict(self),)  # a pickled or copied schema is a plain dict, free to change

    def _refuse_change(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("the schema of a sync DAG's param is shared by every sync DAG: copy it to change it")

    __setitem__ = __delitem__ = __ior__ = clear = pop = popitem = setdefault = update = _refuse_change


_FULL_REFRESH_SCHEMA: Final = _SharedSchema({"$schema": _PARAM_DIALECT, "type": "boolean", "title": "Full refresh"})
_MAX_TOTAL_SCHEMA: Final = _SharedSchema(
    {
        "$schema": _PARAM_DIALECT,
        "type": ["null", "integer"],
        "minimum": 1,
        "maximum": MAX_BIGINT,
        "title": "Max records",
    }
)


def _params(definition: SyncDefinition) -> dict[str, Param]:
    return {
        "full_refresh": Param(
            False,
            description="Start from the first page, ignoring the checkpoint a failed try of this run left.",
            schema=_FULL_REFRESH_SCHEMA,
        ),
        "max_total": Param(
            definition.max_total,
            description="Stop after this many records (empty: no limit). A cut run marks no record as deleted.",
            schema=_MAX_TOTAL_SCHEMA,
        ),
    }


def _description(definition: SyncDefinition) -> str:
    table = ".".join(definition.qualified_table)
    return f"Sync {definition.method} {redact_url(definition.url)} into {table}"


def _doc_md(definition: SyncDefinition) -> str:
    shown = {key: value for key, value in definition.redacted().items() if value not in (None, {}, "")}
    schema, table = definition.qualified_table
    return (
        f"### Nango sync `{definition.name}`\n\n"
        f"Fetches `{definition.method} {shown['url']}`, follows every page and upserts each record into "
        f"`{schema}.{table}` (runs are counted in `nango._nango_jobs`).\n\n"
        "```yaml\n" + _yaml_block(definition.name, shown) + "```\n"
    )


def _yaml_block(name: str, fields: dict[str, Any]) -> str:
    """``fields`` under ``name:`` as YAML: mappings as indented blocks, other values as plain scalars or JSON.

    Much cheaper than a YAML emitter, which took a tenth of the time to build a DAG; JSON is valid YAML.
    """
    lines: list[str] = []
    _add_yaml_lines({name: fields}, "", lines)
    lines.append("")
    return "\n".join(lines)


def _add_yaml_lines(mapping: dict[Any, Any], indent: str, lines: list[str]) -> None:
    for key, value in mapping.items():
        if isinstance(value, dict) and value:
            lines.append(f"{indent}{_yaml_scalar(key)}:")
            _add_yaml_lines(value, indent + "  ", lines)
        else:
            lines.append(f"{indent}{_yaml_scalar(key)}: {_yaml_scalar(value)}")


_YAML_PLAIN: Final = re.compile(r"[A-Za-z_/][\w ./:@*?&=%+,;~()-]*")
_YAML_WORDS: Final = frozenset({"true", "false", "yes", "no", "on", "off", "null", "y", "n"})


def _yaml_scalar(value: Any) -> str:
    """A string as it reads when YAML takes it as it is (``application/json``), anything else as JSON."""
    if isinstance(value, str):
        return _yaml_text(value)
    if value is None or isinstance(value, bool):
        return _YAML_CONSTANTS[value]
    if type(value) is int:
        return str(value)
    if type(value) is float and math.isfinite(value):
        return repr(value)  # as JSON writes it
    return json.dumps(value, ensure_ascii=False)


_YAML_CONSTANTS: Final = {None: "null", True: "true", False: "false"}


@functools.lru_cache(maxsize=4096)
def _yaml_text(value: str) -> str:
    """``value`` as it is when YAML reads it back as this string, else as JSON. Cached: most values (paths, connection
    ids, methods, frequencies) repeat from sync to sync."""
    if (
        _YAML_PLAIN.fullmatch(value)
        and value.lower() not in _YAML_WORDS
        and ": " not in value
        and " #" not in value
        and not value.endswith((":", " "))
    ):
        return value
    return json.dumps(value, ensure_ascii=False)
