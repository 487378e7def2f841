"""Paginators: given the request just sent and its response, the next request, or ``None`` to stop.

One small class per style behind :class:`Paginator`, picked by :func:`paginator_for`:

* single   - no paging: one request.
* cursor   - a value from the response goes into the next request (``paging_request_path`` and
  ``paging_response_path``, or ``paging: {type: cursor}``): a query parameter for GET and DELETE, a JSON body
  field for POST, PUT, PATCH.
* next URL - the next page's URL, from the body (``paging_response_path`` alone, or ``paging: {type: link,
  link_path_in_response_body}``) or from the ``Link`` header (``paging: {type: link}``), followed as given.
* offset   - an offset or page number that moves forward after every page (``paging: {type: offset}`` or
  ``{type: page}``), in the query or the body.

Paging stops when the next value is missing, null or empty, or when a stop rule of ``paging:`` says so (a flag,
a total, an empty or short page). A cursor or URL already seen in this run is an endless loop and raises
:class:`PaginationError`. Paginators never send requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nango_provider.definition import SyncDefinition
from nango_provider.exceptions import PaginationError
from nango_provider.pagination.base import PageResponse, Paginator, SinglePagePaginator, StopRules
from nango_provider.pagination.cursor import CursorPaginator
from nango_provider.pagination.next_url import NextUrlPaginator
from nango_provider.pagination.offset import OffsetPaginator
from nango_provider.pagination.request import PageRequest, first_request, restore_secrets
from nango_provider.paging import Paging

__all__ = [
    "CursorPaginator",
    "NextUrlPaginator",
    "OffsetPaginator",
    "PageRequest",
    "PageResponse",
    "Paginator",
    "SinglePagePaginator",
    "first_request",
    "paginator_for",
    "request_from_checkpoint",
]


def paginator_for(definition: SyncDefinition) -> Paginator:
    """The paginator a definition asks for."""
    if definition.paging is not None:
        return _styled(definition, definition.paging)
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


def _styled(definition: SyncDefinition, paging: Paging) -> Paginator:
    """The paginator of a ``paging:`` mapping (validated, so every field its type needs is there)."""
    stops = StopRules(definition.name, paging)
    if paging.type == "cursor" and paging.cursor_name_in_request and paging.cursor_path_in_response:
        return CursorPaginator(
            definition.name,
            request_path=paging.cursor_name_in_request,
            response_path=paging.cursor_path_in_response,
            in_body=definition.uses_body_cursor,
            stops=stops,
        )
    if paging.type == "link":
        return NextUrlPaginator(
            definition.name,
            response_path=paging.link_path_in_response_body,
            link_rel=paging.link_rel_in_response_header,
            stops=stops,
        )
    return OffsetPaginator(definition.name, paging=paging, in_body=definition.uses_body_cursor)


def request_from_checkpoint(
    definition: SyncDefinition, checkpoint: Mapping[str, Any], since: Any = None
) -> PageRequest:
    """The request a checkpoint stands for (the inverse of :meth:`PageRequest.to_checkpoint`); ``since`` is the
    value the run's first request asked from (incremental syncs)."""
    base = first_request(definition, since)
    if "cursor" in checkpoint or "offset" in checkpoint:
        paginator = paginator_for(definition)
        if "cursor" in checkpoint and isinstance(paginator, CursorPaginator):
            return paginator.with_cursor(base, checkpoint["cursor"])
        if "offset" in checkpoint and isinstance(paginator, OffsetPaginator):
            return paginator.at(base, int(checkpoint["offset"]), int(checkpoint["received"]))
        kind = "a cursor" if "cursor" in checkpoint else "an offset"
        raise PaginationError(
            f"the checkpoint holds {kind} but the sync's paging is not of that kind: it changed since the run "
            "started; clear the run with full_refresh",
            sync=definition.name,
        )
    return PageRequest(definition.method, restore_secrets(checkpoint["url"], definition), {}, base.body)
