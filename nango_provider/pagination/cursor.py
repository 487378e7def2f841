"""Cursor paging: the value at ``paging_response_path`` goes back under ``paging_request_path``."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from nango_provider.pagination.base import Paginator, next_value
from nango_provider.pagination.request import PageRequest
from nango_provider.paths import compile_path, set_dot_path


class CursorPaginator(Paginator):
    """Sends the cursor found at ``response_path`` back under ``request_path`` (query or body)."""

    def __init__(self, sync: str, *, request_path: str, response_path: str, in_body: bool) -> None:
        super().__init__(sync)
        self.request_path = request_path
        self.response_path = compile_path(response_path)
        self.in_body = in_body
        compile_path(request_path)

    def next_request(self, request: PageRequest, fetched_url: str, document: Any, page: int) -> PageRequest | None:
        cursor = next_value(self.response_path.get(document), self.sync, "cursor", self.response_path.expression)
        if cursor is None:
            return None
        self._remember("cursor", str(cursor), page)
        return self.with_cursor(request, cursor)

    def with_cursor(self, request: PageRequest, cursor: Any) -> PageRequest:
        """``request`` with ``cursor`` in its query or body, in place of any earlier cursor."""
        if self.in_body:
            body: dict[str, Any] = dict(copy.deepcopy(request.body)) if isinstance(request.body, Mapping) else {}
            set_dot_path(body, self.request_path, cursor)
            return replace(request, body=body, cursor=cursor)
        return replace(request, params={**request.params, self.request_path: cursor}, cursor=cursor)
