"""The DAG factory: sync definitions (YAML files or Python) in, one scheduled DAG per sync out.

It reads definitions (YAML files, and the syncs created through the REST API from the registry table) and
builds DAG objects; it does no other I/O. When Airflow parses the DAG file
to run a single task, only that task's DAG is built (``get_parsing_context().dag_id``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, MutableMapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import yaml
from airflow.sdk import DAG, Asset, Param, get_parsing_context

from nango_provider.definition import DAG_ID_PREFIX, SyncDefinition, iter_definitions_file
from nango_provider.exceptions import NangoError, RegistryNotConfiguredError, StoreError, SyncDefinitionError
from nango_provider.operators.sync import NangoSyncOperator
from nango_provider.store.registry import SOURCE as REGISTRY_SOURCE
from nango_provider.store.registry import SyncRegistry

START_DATE: Final = datetime(2024, 1, 1, tzinfo=UTC)
DEFAULT_TASK_ARGS: Final[dict[str, Any]] = {
    "owner": "nango",
    "retries": 3,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
}
SYNCS_PATH_VARIABLE: Final = "NANGO_SYNCS_PATH"
_YAML_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
ERRORS_DAG_ID: Final = "nango_sync_definition_errors"
API_TAGS: Final = ("nango", "sync", "api")


def sync_asset(table: str, postgres_conn_id: str = "postgres_default") -> Asset:
    """The Asset a sync updates: schedule a downstream DAG on it (``schedule=[sync_asset("nango.pokemon")]``).

    ``table`` is ``schema.table`` (or a bare table in schema ``nango``).
    """
    schema, _, name = table.rpartition(".")
    return Asset(uri=f"nango://{postgres_conn_id}/{schema or 'nango'}/{name}")


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
        "params": _params(definition),
        **dag_kwargs,
    }
    with DAG(**options) as dag:
        NangoSyncOperator.from_definition(
            definition,
            task_id="sync",
            full_refresh="{{ params.full_refresh }}",
            max_total="{{ params.max_total }}",
            outlets=[sync_asset(".".join(definition.qualified_table), definition.postgres_conn_id)],
        )
    return dag


def nango_sync(name: str, url: str, **fields: Any) -> DAG:
    """The DAG of one sync, from keyword fields: the Python counterpart of ``Nango.sync(url, options)``.

    ``fields`` are the definition's fields (``response_path``, ``unique_key``, ``frequency``, ...); keyword
    arguments of ``DAG`` go in ``dag_kwargs={...}``.
    """
    dag_kwargs = fields.pop("dag_kwargs", {})
    return build_dag(SyncDefinition.from_mapping(name, {"url": url, **fields}), **dag_kwargs)


def load_sync_dags(
    folder: str | Path | None = None, namespace: MutableMapping[str, Any] | None = None, *, registry: bool = True
) -> dict[str, DAG]:
    """Build the DAGs of every sync in ``*.yaml`` / ``*.yml`` files under ``folder`` (recursively).

    ``folder`` defaults to ``$NANGO_SYNCS_PATH``. With ``namespace`` (a DAG file's ``globals()``) the DAGs are
    also put there for Airflow to find. Broken files do not stop the others: their errors are reported by a
    placeholder that makes Airflow show an import error for the DAG file, naming file, sync and field.

    With ``registry`` (the default) the syncs created through the REST API (table ``nango._nango_definitions``
    of ``$NANGO_REGISTRY_CONN_ID``) are built too: unpaused, tagged ``api``. A name defined twice is an error;
    an unreachable registry is reported like a broken file, and the YAML syncs still load.
    """
    location = folder or os.environ.get(SYNCS_PATH_VARIABLE)
    if not location:
        raise NangoError(f"no folder of sync definitions: pass one, or set {SYNCS_PATH_VARIABLE}")
    root = Path(location)
    wanted = get_parsing_context().dag_id
    dags: dict[str, DAG] = {}
    errors: list[str] = []
    sources: dict[str, Path | str] = {}
    for path, definition in _definitions_under(root, wanted, errors):
        if definition.dag_id in sources:
            errors.append(f"{path}: sync {definition.name!r} is already defined in {sources[definition.dag_id]}")
            continue
        sources[definition.dag_id] = path
        dags[definition.dag_id] = build_dag(definition)
    if registry and not (wanted and wanted in dags):
        for definition in _registry_definitions(wanted, errors):
            if definition.dag_id in sources:
                errors.append(
                    f"{REGISTRY_SOURCE}: sync {definition.name!r} is already defined in {sources[definition.dag_id]}"
                )
                continue
            sources[definition.dag_id] = REGISTRY_SOURCE
            dags[definition.dag_id] = build_dag(definition, is_paused_upon_creation=False, tags=list(API_TAGS))
    if not root.is_dir():
        errors.append(f"{root}: the folder of sync definitions ({SYNCS_PATH_VARIABLE}) does not exist")
    if namespace is not None:
        namespace.update(dags)
        if errors:
            namespace[ERRORS_DAG_ID] = DefinitionErrors(errors)
    return dags


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


def _registry_definitions(wanted: str | None, errors: list[str]) -> Iterator[SyncDefinition]:
    """Syncs created through the REST API (only ``wanted``'s when set); their errors go to ``errors``.

    No registry connection, or no registry table yet, means no API syncs; an unreachable database is an error.
    """
    if wanted and not wanted.startswith(DAG_ID_PREFIX):
        return
    store = SyncRegistry()
    try:
        if wanted:
            found = store.get(wanted.removeprefix(DAG_ID_PREFIX))
            items: list[Any] = [found] if found else []
        else:
            items = list(store.iter_definitions())
    except RegistryNotConfiguredError:
        return
    except (SyncDefinitionError, StoreError) as error:
        errors.append(str(error))
        return
    for item in items:
        if isinstance(item, SyncDefinitionError):
            errors.append(str(item))
        else:
            yield item.definition


def _definition_files(root: Path) -> Iterable[Path]:
    if not root.is_dir():
        return []
    return sorted(path for path in root.rglob("*") if path.suffix in (".yaml", ".yml") and path.is_file())


def _may_define(path: Path, dag_id: str) -> bool:
    """Cheap text check before parsing YAML, so building one DAG out of many files stays fast."""
    name = dag_id.removeprefix(DAG_ID_PREFIX)
    return name != dag_id and name in path.read_text(encoding="utf-8")


class DefinitionErrors(DAG):
    """Stands in for broken definitions: Airflow validates it, gets the errors, and shows an import error.

    The DAGs of valid definitions in the same DAG file are still loaded.
    """

    def __init__(self, errors: list[str]) -> None:
        super().__init__(dag_id=ERRORS_DAG_ID, schedule=None, start_date=START_DATE)
        self.definition_errors = errors

    def validate(self) -> None:
        """Always fails, with every definition error, one per line."""
        count = len(self.definition_errors)
        raise NangoError(
            f"{count} invalid sync definition{'s' if count > 1 else ''} (every valid sync was loaded):\n"
            + "\n".join(self.definition_errors)
        )


def _params(definition: SyncDefinition) -> dict[str, Param]:
    return {
        "full_refresh": Param(
            False,
            type="boolean",
            title="Full refresh",
            description="Start from the first page, ignoring the checkpoint a failed try of this run left.",
        ),
        "max_total": Param(
            definition.max_total,
            type=["null", "integer"],
            minimum=1,
            title="Max records",
            description="Stop after this many records (empty: no limit). A cut run marks no record as deleted.",
        ),
    }


def _description(definition: SyncDefinition) -> str:
    table = ".".join(definition.qualified_table)
    return f"Sync {definition.method} {definition.redacted()['url']} into {table}"


def _doc_md(definition: SyncDefinition) -> str:
    shown = {key: value for key, value in definition.redacted().items() if value not in (None, {}, "")}
    schema, table = definition.qualified_table
    return (
        f"### Nango sync `{definition.name}`\n\n"
        f"Fetches `{definition.method} {shown['url']}`, follows every page and upserts each record into "
        f"`{schema}.{table}` (runs are counted in `nango._nango_jobs`).\n\n"
        "```yaml\n"
        + yaml.dump({definition.name: shown}, Dumper=_YAML_DUMPER, sort_keys=False, allow_unicode=True)
        + "```\n"
    )
