"""The one error tree of nango-provider.

::

    NangoError
    ├── SyncDefinitionError        a definition field is wrong (names the sync and the field)
    │   └── TableOwnedError        the table belongs to another sync (names both)
    ├── InvalidSyncDefinitionsError   every definition that could not be loaded, one line each (DAG file report)
    ├── PathError                  a dot path or JSONPath expression cannot be compiled
    ├── SyncRunError               a run failed; carries the sync name
    │   ├── HttpError              a request failed: an error status (status, request, response), or no
    │   │                          usable answer at all (status 0: refused, reset, timed out, bad URL, ...)
    │   ├── ResponseError          the body is not JSON, or has no records where the definition says
    │   ├── PaginationError        a next value repeats, a flag or total is unreadable, or max_pages is hit
    │   ├── RecordError            a record cannot be stored (missing key, NUL character, ...)
    │   └── ForbiddenTargetError   a request would go where it must not: a cloud metadata address, Airflow
    │                              itself, a host outside the allow-list, or a connection's secret to another host
    ├── SyncExistsError            a sync name is already taken (REST API)
    ├── SyncNotFoundError          no sync has this name (REST API)
    ├── SyncStateError             an action is impossible in the sync's current state (REST API)
    ├── TriggerParamsError         a run's params are refused: unknown name (with the nearest) or bad value
    └── StoreError                 Postgres refused or lost the connection, or the table is busy
        └── RegistryNotConfiguredError   the registry's Airflow connection is not defined (no API syncs)

Every error has ``retryable``: whether the same run may succeed if tried again later. It is true for what is
usually temporary: ``HttpError`` with status 0 (no answer), 408, 429 or 5xx; ``ResponseError`` for a JSON
body cut off on the way; ``StoreError`` (Postgres restarting, a lost connection). It is false for what fails
the same way until the definition or the data change: every other 4xx, a definition or path error, a loop in
pagination, a missing ``response_path``, a record without its key. The HTTP layer retries a request only
when its error is retryable; the Airflow operator fails the task at once, without Airflow's retries, when
it is not.

Outside the tree, like ``KeyboardInterrupt``: ``SyncCancelled`` (a ``BaseException``), raised when a run is
told to stop; it is not an error of the sync, so ``except Exception`` blocks let it through.

Code never matches on message text: branch on the class and its attributes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

RETRYABLE_STATUSES: Final = frozenset({408, 429})
"""HTTP statuses below 500 that are worth trying again (request timeout, too many requests)."""


class NangoError(Exception):
    """Base class of every error raised by nango-provider.

    ``retryable`` (a class default, which an instance may override) is true when trying the same run again
    later may succeed, false when it would fail the same way until the definition or the data change.
    """

    retryable: bool = False


class SyncDefinitionError(NangoError, ValueError):
    """A sync definition is invalid: ``sync`` and ``field`` say where, the message says what was expected."""

    def __init__(self, sync: str, field: str | None, message: str, *, source: str | None = None) -> None:
        self.sync = sync
        self.field = field
        self.source = source
        self.detail = message
        where = f"{source}: " if source else ""
        what = f"sync {sync!r}" + (f", field {field!r}" if field else "")
        super().__init__(f"{where}{what}: {message}")


class TableOwnedError(SyncDefinitionError):
    """The sync's table is owned by another sync: ``table`` is the table, ``owner`` and ``claimant`` describe
    both syncs (sync name, DAG id and task id). Raised before the run writes anything."""

    def __init__(self, sync: str, *, table: str, owner: str, claimant: str) -> None:
        self.table = table
        self.owner = owner
        self.claimant = claimant
        super().__init__(
            sync,
            "table",
            f"the table {table} belongs to {owner}, so {claimant} may not write it (each would mark the other's "
            f'records deleted); set `table` to another table, or hand {table} over: see "Table ownership" '
            "in the reference",
        )


class SyncCancelled(BaseException):
    """The run was told to stop (the task was cancelled or terminated); its job row says ``cancelled``."""


class InvalidSyncDefinitionsError(NangoError):
    """Syncs that could not be loaded: ``errors`` (one line each: file or registry, sync, field, what was expected)
    and, when the registry of API-created syncs did not answer, why (``registry_error``).

    Raised by the DAG file that reports definition errors (``nango_sync_errors.py``), so that Airflow shows them
    as that file's import error, while the DAG file that builds the syncs loads every valid one.
    """

    def __init__(self, errors: Sequence[str], registry_error: str | None = None) -> None:
        self.errors = tuple(errors)
        self.registry_error = registry_error
        lines = list(self.errors)
        if registry_error:
            lines.insert(0, f"{registry_error} (the syncs created through the REST API are not loaded until it does)")
        super().__init__("\n".join([self._header(), *lines]))

    def _header(self) -> str:
        count = len(self.errors)
        invalid = f"{count} invalid sync definition{'s' if count != 1 else ''}"
        if self.registry_error is None:
            return f"{invalid} (every valid sync is loaded):"
        unread = "the registry of API-created syncs cannot be read (every valid YAML sync is loaded):"
        return f"{invalid}, and {unread}" if count else unread[0].upper() + unread[1:]

    @staticmethod
    def lines_of(message: str) -> list[str]:
        """The problems of a message of this class (its lines after the header), e.g. read back from Airflow."""
        return [line for line in message.splitlines()[1:] if line.strip()]


class PathError(NangoError, ValueError):
    """A path expression (dot notation or JSONPath) is not valid."""


class SyncRunError(NangoError):
    """A sync run failed."""

    def __init__(self, message: str, *, sync: str | None = None) -> None:
        self.sync = sync
        prefix = f"sync {sync!r}: " if sync else ""
        super().__init__(prefix + message)


class HttpError(SyncRunError):
    """A request failed: the API answered an error status, or there was no usable answer (``status`` 0).

    ``retryable`` defaults to the status: true for 0 (no answer: refused, reset, timed out), 408, 429 and 5xx;
    false for any other status. A caller that knows better (a TLS certificate refused, a malformed URL, a
    redirect to another host) passes ``retryable`` explicitly.
    """

    def __init__(
        self,
        message: str,
        *,
        sync: str | None = None,
        status: int,
        request: Any = None,
        response: Any = None,
        retryable: bool | None = None,
    ) -> None:
        self.status = status
        self.request = request
        self.response = response
        self.retryable = is_retryable_status(status) if retryable is None else retryable
        super().__init__(message, sync=sync)


def is_retryable_status(status: int) -> bool:
    """Whether an HTTP status (0: no answer at all) is usually temporary."""
    return status == 0 or status in RETRYABLE_STATUSES or status >= 500


class ResponseError(SyncRunError):
    """A response is not JSON, or does not hold the records where the definition says.

    Not retryable, except a body labelled JSON that does not decode (cut off or garbled on the way).
    """

    def __init__(self, message: str, *, sync: str | None = None, retryable: bool = False) -> None:
        self.retryable = retryable
        super().__init__(message, sync=sync)


class PaginationError(SyncRunError):
    """Pagination cannot go on safely: a cursor or next URL repeats, a stop flag or total is unreadable, or the page
    limit is reached."""


class RecordError(SyncRunError):
    """A record cannot be stored as it is."""


class ForbiddenTargetError(SyncRunError):
    """A request is refused before it is sent: its host is a cloud metadata or link-local address, Airflow's own
    API server, or outside ``[nango] allowed_hosts``; or it would carry a connection's credentials or secrets to a
    host other than that connection's. Not retryable."""


class StoreError(NangoError):
    """Postgres refused a write, lost the connection, or another run holds the table (retryable)."""

    retryable = True


class RegistryNotConfiguredError(StoreError):
    """The registry's Airflow connection is not defined: there are no API-created syncs to read."""

    retryable = False


class SyncExistsError(NangoError):
    """A sync with this name is already defined; ``name`` says which and ``where`` says where."""

    def __init__(self, name: str, where: str) -> None:
        self.name = name
        self.where = where
        super().__init__(f"sync {name!r} is already defined in {where}")


class SyncNotFoundError(NangoError):
    """No sync has this name (``name``)."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"sync {name!r} does not exist")


class TriggerParamsError(NangoError, ValueError):
    """The params of a run (a trigger's ``conf``) are refused; ``param`` names the param (``None``: the params
    as a whole), ``detail`` says what was expected."""

    def __init__(self, dag_id: str, param: str | None, message: str) -> None:
        self.dag_id = dag_id
        self.param = param
        self.detail = message
        what = f"param {param!r} of {dag_id}" if param else f"params of {dag_id}"
        super().__init__(f"{what}: {message}")


class SyncStateError(NangoError):
    """The action is not possible in the sync's current state (not parsed yet, defined in a YAML file, ...)."""
