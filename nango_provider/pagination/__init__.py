"""Paginators: given the request just sent and its decoded response, the next request, or ``None`` to stop.

One small class per style behind :class:`Paginator`, picked by :func:`paginator_for`:

* single   - no ``paging_response_path``: one request.
* cursor   - the value at ``paging_response_path`` goes into the next request under
  ``paging_request_path``: a query parameter for GET and DELETE, a JSON body field for POST, PUT, PATCH.
* next URL - ``paging_response_path`` without ``paging_request_path``: the value is the next URL,
  absolute or relative to the URL just fetched, followed as given.

Paging stops when the value is missing, null or empty. A cursor or URL already seen in this run is an
endless loop and raises :class:`PaginationError`. Paginators never send requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nango_provider.definition import SyncDefinition
from nango_provider.exceptions import PaginationError
from nango_provider.pagination.base import Paginator, SinglePagePaginator
from nango_provider.pagination.cursor import CursorPaginator
from nango_provider.pagination.next_url import NextUrlPaginator
from nango_provider.pagination.request import PageRequest, first_request, restore_secrets

__all__ = [
    "CursorPaginator",
    "NextUrlPaginator",
    "PageRequest",
    "Paginator",
    "SinglePagePaginator",
    "first_request",
    "paginator_for",
    "request_from_checkpoint",
]


def paginator_for(definition: SyncDefinition) -> Paginator:
    """The paginator a definition asks for."""
    if not definition.paging_response_path:
        return SinglePagePaginator(definition.name)
    if definition.paging_request_path:
        return CursorPaginator(
            definition.name,
            request_path=definition.paging_request_path,
            response_path=definition.paging_response_path,
            in_body=definition.uses_body_cursor,
        )
    return NextUrlPaginator(definition.name, response_path=definition.paging_response_path)


def request_from_checkpoint(definition: SyncDefinition, checkpoint: Mapping[str, Any]) -> PageRequest:
    """The request a checkpoint stands for (the inverse of :meth:`PageRequest.to_checkpoint`)."""
    if "cursor" in checkpoint:
        paginator = paginator_for(definition)
        if not isinstance(paginator, CursorPaginator):
            raise PaginationError(
                "the checkpoint holds a cursor but the sync has no paging_request_path", sync=definition.name
            )
        return paginator.with_cursor(first_request(definition), checkpoint["cursor"])
    return PageRequest(definition.method, restore_secrets(checkpoint["url"], definition), {}, definition.body)
