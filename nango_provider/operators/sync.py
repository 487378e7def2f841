"""``NangoSyncOperator``: the Airflow adapter of a sync: templates, context and masking around the engine.

Usable in any DAG; the DAG factory builds one per sync definition. The task's return value (XCom) is the
run's counts, never records. A task told to terminate (SIGTERM: its run was cancelled or marked failed, or its
worker shuts down) stops the sync, ends its job row as ``cancelled`` and fails without a retry.

Airflow's rules for templated fields hold: ``__init__`` only stores its arguments (an ``XComArg`` or a Jinja
string is fine anywhere), the definition is validated once the task runs, after rendering, and the secrets of
the rendered values are registered with Airflow's masker before Airflow stores the rendered fields.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException

from nango_provider.definition import CONN_ID, DEFAULT_SCHEMA, SyncDefinition, default_of
from nango_provider.exceptions import NangoError, SyncDefinitionError
from nango_provider.incremental import Incremental
from nango_provider.paging import Paging
from nango_provider.redaction import secret_values, url_secret_values
from nango_provider.targets import REQUEST_FIELDS, strings_in, template_connection_ids

if TYPE_CHECKING:
    from nango_provider.engine import Cancellation, RunOutcome

_FIELDS_NOT_FOR_TASKS = frozenset({"name", "frequency", "allow_short_frequency", "frequency_text"})
_AIRFLOW_TASK_FIELDS = ("pool", "pool_slots")
"""Definition fields that are Airflow's own task arguments: the task takes them as they are."""
OPERATOR_FIELDS = tuple(
    f.name
    for f in dataclasses.fields(SyncDefinition)
    if f.name not in _FIELDS_NOT_FOR_TASKS and f.name not in _AIRFLOW_TASK_FIELDS
)
_MAPPING_FIELDS = ("headers", "query_params", "metadata")
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off", ""})
_Execute = Callable[["NangoSyncOperator", Any], dict[str, Any]]


def _hopeless_errors_fail_without_retry(execute: _Execute) -> _Execute:
    """``execute``, with the errors that are not retryable (a loop, a 404, a missing path, an invalid definition,
    a record without its key) turned into Airflow's fail-without-retry; retryable ones keep the task's retries."""

    @functools.wraps(execute)
    def run(operator: NangoSyncOperator, context: Any) -> dict[str, Any]:
        try:
            return execute(operator, context)
        except NangoError as error:
            if error.retryable:
                raise
            raise AirflowFailException(
                f"{type(error).__name__}: {error} (not retried: this fails the same way on every try until the "
                "definition or the API's answers change)"
            ) from error

    return run


class NangoSyncOperator(BaseOperator):
    """Sync an HTTP API into a Postgres table: request, extract ``response_path``, follow every page, upsert.

    Keyword arguments are the sync definition's fields (see the field reference in the docs); ``None`` means
    the definition's default. ``url``, ``headers``, ``query_params``, ``body``, ``full_refresh`` and
    ``max_total`` are templated: a header may be ``"Bearer {{ conn.my_api.password }}"``, ``url`` an upstream
    task's ``XComArg``, and ``headers`` a template rendering to a JSON object (``"{{ var.json.api_headers }}"``).
    ``metadata`` (constant values stored with every row) is templated the same way. Everything is validated
    when the task runs, after rendering.

    :param sync_name: the sync's name (``^[a-z][a-z0-9_]*$``); names the default table ``nango.<sync_name>``
        and the rows in ``nango._nango_jobs``. Defaults to the task id.
    :param full_refresh: ignore a saved checkpoint of this run and start from the first page.
    :param soft_delete: the original product's spelling: ``True`` is ``deletes="soft"``, ``False`` is ``"keep"``.
    :param connections: the sync's HTTP connections, when it has several (a list, or a template rendering to one);
        each runs as one mapped task: ``NangoSyncOperator.partial(..., connections=[...]).expand(connection=[...])``.
    :param connection: the connection this task syncs (one of ``connections``; usually the mapped argument):
        its host and credentials apply as ``http_conn_id``'s do, and the rows are keyed by (connection, unique
        key) in the column ``_nango_connection_id``.
    """

    template_fields: Sequence[str] = (
        "url", "headers", "query_params", "body", "full_refresh", "max_total", "metadata"
    )  # fmt: skip
    template_fields_renderers = {"headers": "json", "query_params": "json", "body": "json", "metadata": "json"}
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        url: Any,
        sync_name: str | None = None,
        method: str | None = None,
        headers: Mapping[str, Any] | str | None = None,
        query_params: Mapping[str, Any] | str | None = None,
        body: Any = None,
        response_path: str | None = None,
        unique_key: str | None = None,
        paging_request_path: str | None = None,
        paging_response_path: str | None = None,
        paging: Mapping[str, Any] | Paging | None = None,
        incremental: Mapping[str, Any] | Incremental | None = None,
        table: str | None = None,
        http_conn_id: str | None = None,
        connections: Sequence[str] | str | None = None,
        connection: str | None = None,
        postgres_conn_id: str | None = None,
        max_total: int | str | None = None,
        full_refresh: bool | str = False,
        request_retries: int | None = None,
        request_retry_max_seconds: float | None = None,
        request_backoff_seconds: float | None = None,
        request_timeout: float | None = None,
        max_pages: int | None = None,
        deletes: str | None = None,
        soft_delete: bool | None = None,
        metadata: Mapping[str, Any] | str | None = None,
        auto_mapping: bool | None = None,
        max_requests_per_second: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sync_name = sync_name or _name_from_task_id(self.task_id)
        self.url = url
        self.method = method
        self.headers = headers
        self.query_params = query_params
        self.body = body
        self.response_path = response_path
        self.unique_key = unique_key
        self.paging_request_path = paging_request_path
        self.paging_response_path = paging_response_path
        self.paging = paging
        self.incremental = incremental
        self.table = table
        self.http_conn_id = http_conn_id
        self.connections = connections
        self.connection = connection
        self.postgres_conn_id = postgres_conn_id
        self.max_total = max_total
        self.full_refresh = full_refresh
        self.request_retries = request_retries
        self.request_retry_max_seconds = request_retry_max_seconds
        self.request_backoff_seconds = request_backoff_seconds
        self.request_timeout = request_timeout
        self.max_pages = max_pages
        self.deletes = deletes
        self.soft_delete = soft_delete
        self.metadata = metadata
        self.auto_mapping = auto_mapping
        self.max_requests_per_second = max_requests_per_second
        self._cancellation: Cancellation | None = None
        self._template_connections: frozenset[str] = frozenset()

    @classmethod
    def from_definition(cls, definition: SyncDefinition, **kwargs: Any) -> NangoSyncOperator:
        """An operator for an already validated definition; ``kwargs`` are BaseOperator arguments or overrides.

        The definition's ``pool`` and ``pool_slots`` become the task's own (Airflow's defaults when not set)."""
        return cls(sync_name=definition.name, **(_operator_arguments(definition) | kwargs))

    @classmethod
    def partial_from_definition(cls, definition: SyncDefinition, **kwargs: Any) -> Any:
        """``from_definition`` for a sync with several ``connections``: the partial operator, to be expanded over
        its connections (``.expand(connection=...)``, one mapped task per connection)."""
        fields = _operator_arguments(definition)
        if isinstance(fields["connections"], tuple):
            fields["connections"] = list(fields["connections"])
        return cls.partial(sync_name=definition.name, **(fields | kwargs))

    def _do_render_template_fields(
        self, parent: Any, template_fields: Any, context: Any, jinja_env: Any, seen_oids: set[int]
    ) -> None:
        """Render as Airflow does; then, for this operator's own fields, read mappings written as JSON text and
        mask the rendered secrets.

        Airflow stores the rendered fields (the "Rendered Templates" tab) right after rendering, redacting only
        what its masker knows: the values this project treats as secret are registered here, first. This is
        the method Airflow calls for plain and for mapped (``expand``) tasks alike; it also renders nested
        objects (``parent`` is then not this operator).

        The connections the request templates read are noted first: no request may carry their secrets to a host
        other than theirs (docs/security.md).
        """
        if parent is self:
            self._template_connections = self._connections_in_templates()
        super()._do_render_template_fields(parent, template_fields, context, jinja_env, seen_oids)
        if parent is not self:
            return
        for name in _MAPPING_FIELDS:
            setattr(self, name, _mapping_from_text(getattr(self, name)))
        self.body = _json_from_text(self.body)
        _mask(self._rendered_secrets())

    def build_definition(self) -> SyncDefinition:
        """The definition this task runs, validated from its current (rendered, once running) attributes.

        Raises :class:`SyncDefinitionError` naming the sync and the field for any value that is not valid.
        """
        fields = {name: getattr(self, name) for name in OPERATOR_FIELDS}
        for name in _MAPPING_FIELDS:
            fields[name] = self._mapping(name)
        fields["body"] = _json_from_text(self.body)
        fields["max_total"] = _optional_int(self.max_total)
        fields["soft_delete"] = self.soft_delete
        if self.connection is not None and fields["connections"] is None:
            fields["connections"] = [self.connection]  # checked as a sync with connections is
        definition = SyncDefinition.from_mapping(self.sync_name, {**fields, "frequency": None}, source=self._source)
        self._check_connection(definition)
        return definition

    def _check_connection(self, definition: SyncDefinition) -> None:
        """A sync with ``connections`` runs one task per connection: this task's must be one of them."""
        if definition.connections is None:
            return
        if self.connection is None:
            raise SyncDefinitionError(
                self.sync_name,
                "connections",
                "each connection runs as its own mapped task: expand the operator over them "
                "(NangoSyncOperator.partial(..., connections=[...]).expand(connection=[...])), as the DAG factory does",
                source=self._source,
            )
        if not isinstance(self.connection, str) or not CONN_ID.fullmatch(self.connection):
            raise SyncDefinitionError(
                self.sync_name,
                "connection",
                f"expected an Airflow connection id, got {self.connection!r}",
                source=self._source,
            )
        if isinstance(definition.connections, tuple) and self.connection not in definition.connections:
            raise SyncDefinitionError(
                self.sync_name,
                "connection",
                f"{self.connection!r} is not one of the sync's connections {list(definition.connections)}",
                source=self._source,
            )

    @_hopeless_errors_fail_without_retry
    def execute(self, context: Any) -> dict[str, Any]:
        """Run the sync and return its counts: pages, fetched, added, updated, unchanged, deleted (and
        ``connection_id``, the connection it synced, for a sync with several)."""
        from airflow.providers.postgres.hooks.postgres import PostgresHook
        from airflow.sdk.exceptions import AirflowTaskTerminated

        # Imported here, not at the top: parsing 1,000 DAGs must not load the run-time modules.
        from nango_provider.engine import Cancellation, execute_sync
        from nango_provider.exceptions import SyncCancelled
        from nango_provider.hooks.nango import NangoHook
        from nango_provider.store.postgres import PostgresStore, RunIdentity

        definition, full_refresh = self._rendered_settings(context)
        connection = self.connection if definition.connections is not None else None
        hook = NangoHook(connection or definition.http_conn_id, template_connections=self._template_connections)
        _mask(hook.secrets(definition))
        ti = context["ti"]
        run = RunIdentity(definition.name, ti.dag_id, ti.task_id, context["run_id"], ti.try_number, connection)
        postgres = PostgresHook(postgres_conn_id=definition.postgres_conn_id)
        store = PostgresStore(postgres.get_conn, definition, connection_id=connection)  # type: ignore[arg-type]
        self._cancellation = cancellation = Cancellation()
        try:
            outcome = execute_sync(
                hook, store, definition, run, full_refresh=full_refresh, log=self.log.info, cancellation=cancellation
            )
        except SyncCancelled as cancelled:
            raise AirflowTaskTerminated(str(cancelled)) from cancelled  # Airflow fails it without a retry
        finally:
            self._cancellation = None
        self._describe_outlet_events(context, definition, outcome, connection)
        return outcome.counts if connection is None else {**outcome.counts, "connection_id": connection}

    def _describe_outlet_events(
        self, context: Any, definition: SyncDefinition, outcome: RunOutcome, connection: str | None = None
    ) -> None:
        """Put the run's counts and time window in the extra of the event of the sync's Asset (when it is one of
        the task's outlets), for downstream DAGs scheduled on it (:mod:`nango_provider.changes`)."""
        from nango_provider.dag_factory import sync_asset

        table = ".".join(definition.qualified_table)
        asset = sync_asset(table, definition.postgres_conn_id)
        if not any(getattr(outlet, "uri", None) == asset.uri for outlet in self.outlets):
            return
        extra = outcome.event_extra(definition.name, table, definition.deletes)
        if connection is not None:
            extra["connection_id"] = connection
        context["outlet_events"][asset].extra.update(extra)

    def on_kill(self) -> None:
        """Stop a running sync: Airflow calls this on SIGTERM, in the task's main thread (a signal handler), so it
        only asks the run to stop; the run ends its job row as ``cancelled`` within about a second."""
        cancellation = getattr(self, "_cancellation", None)
        if cancellation is not None:
            cancellation.cancel(
                "the task was told to terminate (its run was cancelled or marked failed, or its worker is stopping)"
            )

    def _rendered_settings(self, context: Any) -> tuple[SyncDefinition, bool]:
        """The definition and ``full_refresh`` from the rendered fields; when they are invalid, the error is also
        recorded as a failed run in ``nango._nango_jobs`` (where the sync's runs are watched) before it is raised."""
        try:
            return self.build_definition(), self._full_refresh()
        except SyncDefinitionError as error:
            self._record_failed_start(context, f"{type(error).__name__}: {error}")
            raise

    def _record_failed_start(self, context: Any, message: str) -> None:
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        from nango_provider.store.postgres import RunIdentity, record_failed_start

        ti = context["ti"]
        connection = self.connection if isinstance(self.connection, str) else None
        run = RunIdentity(self.sync_name, ti.dag_id, ti.task_id, context["run_id"], ti.try_number, connection)
        table = self.table if isinstance(self.table, str) else f"{DEFAULT_SCHEMA}.{self.sync_name}"
        conn_id = self.postgres_conn_id if isinstance(self.postgres_conn_id, str) else default_of("postgres_conn_id")
        try:
            record_failed_start(PostgresHook(postgres_conn_id=conn_id).get_conn, run, table, message)  # type: ignore[arg-type]
        except AirflowNotFoundException as missing:
            self.log.warning("the failure is not recorded in nango._nango_jobs: %s", missing)

    def _connections_in_templates(self) -> frozenset[str]:
        """The ids of the connections the request fields' templates read; a template that uses ``conn`` in a way
        no check can follow (a computed id) is a definition error."""
        found: set[str] = set()
        for name in REQUEST_FIELDS:
            for text in strings_in({name: getattr(self, name)}):
                try:
                    found |= template_connection_ids(text)
                except ValueError as error:
                    raise SyncDefinitionError(self.sync_name, name, str(error), source=self._source) from None
        return frozenset(found)

    @property
    def _source(self) -> str:
        """Where a definition error comes from: this task."""
        return f"task {self.task_id!r}"

    def _rendered_secrets(self) -> list[str]:
        """Secret values of the rendered fields; a mapping field still unreadable text is hidden whole."""
        found = url_secret_values(self.url) if isinstance(self.url, str) else []
        headers, params = self.headers, self.query_params
        found += secret_values(_mapping_or_none(headers), _mapping_or_none(params), self.body)
        return found + [value for value in (headers, params) if isinstance(value, str)]

    def _mapping(self, name: str) -> Any:
        value = _mapping_from_text(getattr(self, name))
        if isinstance(value, str):
            raise SyncDefinitionError(
                self.sync_name,
                name,
                "expected a mapping, or a template rendering to the text of a JSON object, "
                f"got text that is not one ({len(value)} characters)",
                source=self._source,
            )
        return value

    def _full_refresh(self) -> bool:
        value = self.full_refresh
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        if isinstance(value, bool | None):
            return bool(value)
        raise SyncDefinitionError(
            self.sync_name, "full_refresh", f"expected true or false, got {value!r}", source=self._source
        )


def _operator_arguments(definition: SyncDefinition) -> dict[str, Any]:
    """The operator's arguments for ``definition``: its fields, with ``pool`` and ``pool_slots`` only when set."""
    fields = {name: getattr(definition, name) for name in OPERATOR_FIELDS}
    return fields | {name: getattr(definition, name) for name in _AIRFLOW_TASK_FIELDS if getattr(definition, name)}


def _mask(secrets: Sequence[str]) -> None:
    from airflow.sdk.log import mask_secret

    for secret in secrets:
        mask_secret(secret)


def _name_from_task_id(task_id: str) -> str:
    """``grp.Load-Contacts`` -> ``grp_load_contacts``: a valid sync name from a task id (TaskGroups add dots)."""
    name = re.sub(r"[^a-z0-9_]+", "_", task_id.lower()).strip("_")
    return name if name[:1].isalpha() else f"sync_{name}"


def decode_rendered(text: str) -> Any:
    """``text`` read as JSON, or as the Python literal Jinja prints a mapping as (``{'a': True}``); else itself."""
    for parse in (json.loads, ast.literal_eval):
        try:
            return parse(text.strip())
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            continue
    return text


def _mapping_from_text(value: Any) -> Any:
    """A rendered template holding a mapping (or nothing: ``None``, ``null``), as that; anything else unchanged."""
    if isinstance(value, str):
        decoded = decode_rendered(value)
        return decoded if isinstance(decoded, Mapping | None) else value
    return value


def _json_from_text(value: Any) -> Any:
    """A body rendered to the text of a JSON object or array (or nothing), as that; anything else unchanged."""
    if isinstance(value, str):
        decoded = decode_rendered(value)
        return decoded if isinstance(decoded, Mapping | list | None) else value
    return value


def _mapping_or_none(value: Any) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) else None


def _optional_int(value: Any) -> Any:
    """A rendered template (``"None"``, ``"500"``) back to ``None`` or an int; anything else unchanged."""
    if isinstance(value, str) and value.strip() in ("", "None", "null"):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value
