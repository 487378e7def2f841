"""Offset and page-number paging: a number in the request moves forward after every page.

The number goes under ``paging.offset_name_in_request`` (or ``page_name_in_request``): a query parameter, or a
JSON body field for POST, PUT and PATCH. It starts at the start value and moves by the records received
(``by-response-size``), by ``limit`` (``by-limit``) or by one (``per-page``, and always for page numbers).
An empty page always ends the data; a total, a flag or a short page may end it sooner (see :class:`StopRules`).
"""

from __future__ import annotations

from dataclasses import replace

from nango_provider.pagination.base import PageResponse, Paginator, StopRules
from nango_provider.pagination.request import PageRequest, with_value
from nango_provider.paging import Paging


class OffsetPaginator(Paginator):
    """Counts its way through the data: offset (records) or page number."""

    def __init__(self, sync: str, *, paging: Paging, in_body: bool) -> None:
        super().__init__(sync, StopRules(sync, paging))
        if not paging.counted or paging.position_name is None:
            raise ValueError("offset paging needs paging type offset or page with the parameter's name")
        self.name = paging.position_name
        self.start = paging.start_value
        self.step = paging.step
        self.limit = paging.limit
        self.in_body = in_body

    def _following(self, request: PageRequest, response: PageResponse, page: int) -> PageRequest | None:
        current = self.start if request.offset is None else request.offset
        return self.at(
            request, current + self._advance(len(response.records)), request.received + len(response.records)
        )

    def planned(self, following: PageRequest, response: PageResponse, page: int, count: int) -> list[PageRequest]:
        """Up to ``count`` requests from ``following`` on that the total in ``response`` says exist.

        What parallel fetching sends ahead; their ``received`` is a guess that the run corrects in order, page by
        page, so the checkpoint stays exact. Empty without a total or with a step known only from the records.
        """
        end = self._end(response, page)
        step = self._advance(0)
        if end is None or following.offset is None or step <= 0:
            return []
        offsets = range(following.offset, end, step)[:count]
        return [self.at(following, offset, following.received) for offset in offsets]

    def _end(self, response: PageResponse, page: int) -> int | None:
        """The first offset or page number past the data, from the total in ``response``."""
        stops = self.stops
        if stops.total_pages is not None:
            return self.start + stops.number_at(stops.total_pages, response.document, page)
        if stops.total is None:
            return None
        total = stops.number_at(stops.total, response.document, page)
        if self.step == "per-page":
            return None if not self.limit else self.start + -(-total // self.limit)
        return self.start + total

    def _advance(self, received: int) -> int:
        if self.step == "per-page":
            return 1
        if self.step == "by-limit" and self.limit is not None:
            return self.limit
        return received

    def at(self, request: PageRequest, offset: int, received: int) -> PageRequest:
        """``request`` asking for ``offset``, with ``received`` records received before it."""
        return replace(with_value(request, self.name, offset, in_body=self.in_body), offset=offset, received=received)
