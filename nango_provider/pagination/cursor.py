"""Cursor paging: the value found in a response goes back into the next request.

The value is at ``paging_response_path`` (or ``paging.cursor_path_in_response``) and goes under
``paging_request_path`` (or ``paging.cursor_name_in_request``): a query parameter, or a JSON body field for POST,
PUT and PATCH. A JSONPath slice such as ``$.data[-1:].id`` takes the cursor from the last record.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from nango_provider.pagination.base import PageResponse, Paginator, StopRules, next_value
from nango_provider.pagination.request import PageRequest, with_value
from nango_provider.paths import compile_path


class CursorPaginator(Paginator):
    """Sends the cursor found at ``response_path`` back under ``request_path`` (query or body)."""

    def __init__(
        self, sync: str, *, request_path: str, response_path: str, in_body: bool, stops: StopRules | None = None
    ) -> None:
        super().__init__(sync, stops)
        self.request_path = request_path
        self.response_path = compile_path(response_path)
        self.in_body = in_body
        compile_path(request_path)

    def _following(self, request: PageRequest, response: PageResponse, page: int) -> PageRequest | None:
        found = self.response_path.get(response.document)
        cursor = next_value(found, self.sync, "cursor", self.response_path.expression)
        if cursor is None:
            return None
        self._remember("cursor", str(cursor), page)
        return self.with_cursor(request, cursor)

    def with_cursor(self, request: PageRequest, cursor: Any) -> PageRequest:
        """``request`` with ``cursor`` in its query or body, in place of any earlier cursor."""
        return replace(with_value(request, self.request_path, cursor, in_body=self.in_body), cursor=cursor)
