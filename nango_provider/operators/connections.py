"""``NangoConnectionsOperator``: renders a sync's ``connections`` template (``"{{ var.json.tenants }}"``) into the
list its sync task is mapped over, when the DAG runs; adding or removing a connection then needs no change to
any file, only to the Variable (or whatever the template reads)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from nango_provider.definition import parse_connections
from nango_provider.exceptions import SyncDefinitionError
from nango_provider.operators.sync import decode_rendered  # Jinja prints a list as Python text: ['a', 'b']


class NangoConnectionsOperator(BaseOperator):
    """Return the rendered ``connections`` of sync ``sync_name`` as a list of connection ids (its XCom).

    A rendered value that is not a list of distinct connection ids fails the task at once, without retries,
    naming the sync and the field; the sync task mapped over it then does not run.
    """

    template_fields: Sequence[str] = ("connections",)
    ui_color = "#e8f4fd"

    def __init__(self, *, sync_name: str, connections: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sync_name = sync_name
        self.connections = connections

    def execute(self, context: Any) -> list[str]:
        """The connection ids, in the order given."""
        try:
            value = decode_rendered(self.connections) if isinstance(self.connections, str) else self.connections
            listed = parse_connections(value, self._fail)
        except SyncDefinitionError as error:
            raise AirflowFailException(str(error)) from error
        self.log.info("sync %r runs for %d connection(s): %s", self.sync_name, len(listed), ", ".join(listed))
        return list(listed)

    def _fail(self, message: str) -> SyncDefinitionError:
        return SyncDefinitionError(self.sync_name, "connections", message, source=f"task {self.task_id!r}")
