"""The one error tree of nango-provider.

::

    NangoError
    ├── SyncDefinitionError        a definition field is wrong (names the sync and the field)
    │   └── TableOwnedError        the table belongs to another sync (names both)
    ├── PathError                  a dot path or JSONPath expression cannot be compiled
    ├── SyncRunError               a run failed; carries the sync name
    │   ├── HttpError              the API answered an error status (status, request, response)
    │   ├── ResponseError          the body is not JSON, or has no records where the definition says
    │   ├── PaginationError        a cursor or next URL repeats, or the page limit is reached
    │   └── RecordError            a record cannot be stored (missing key, NUL character, ...)
    ├── SyncExistsError            a sync name is already taken (REST API)
    ├── SyncNotFoundError          no sync has this name (REST API)
    ├── SyncStateError             an action is impossible in the sync's current state (REST API)
    └── StoreError                 Postgres refused or lost the connection, or the table is busy
        └── RegistryNotConfiguredError   the registry's Airflow connection is not defined (no API syncs)

Outside the tree, like ``KeyboardInterrupt``: ``SyncCancelled`` (a ``BaseException``), raised when a run is
told to stop; it is not an error of the sync, so ``except Exception`` blocks let it through.

Code never matches on message text: branch on the class and its attributes.
"""

from __future__ import annotations

from typing import Any


class NangoError(Exception):
    """Base class of every error raised by nango-provider."""


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


class PathError(NangoError, ValueError):
    """A path expression (dot notation or JSONPath) is not valid."""


class SyncRunError(NangoError):
    """A sync run failed."""

    def __init__(self, message: str, *, sync: str | None = None) -> None:
        self.sync = sync
        prefix = f"sync {sync!r}: " if sync else ""
        super().__init__(prefix + message)


class HttpError(SyncRunError):
    """The API answered with an error status after all retries."""

    def __init__(
        self, message: str, *, sync: str | None = None, status: int, request: Any = None, response: Any = None
    ) -> None:
        self.status = status
        self.request = request
        self.response = response
        super().__init__(message, sync=sync)


class ResponseError(SyncRunError):
    """A response is not JSON, or does not hold the records where the definition says."""


class PaginationError(SyncRunError):
    """Pagination cannot go on safely: a cursor or next URL repeats, or the page limit is reached."""


class RecordError(SyncRunError):
    """A record cannot be stored as it is."""


class StoreError(NangoError):
    """Postgres refused a write, lost the connection, or another run holds the table."""


class RegistryNotConfiguredError(StoreError):
    """The registry's Airflow connection is not defined: there are no API-created syncs to read."""


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


class SyncStateError(NangoError):
    """The action is not possible in the sync's current state (not parsed yet, defined in a YAML file, ...)."""
