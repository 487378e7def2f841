"""The paginator base class and what every style shares: the response view, the stop rules, the loop guard
and the reading of a next value."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from nango_provider.exceptions import PaginationError
from nango_provider.pagination.request import PageRequest
from nango_provider.paging import Paging
from nango_provider.paths import MISSING, CompiledPath, compile_path
from nango_provider.redaction import redact_url


@dataclass(frozen=True)
class PageResponse:
    """What a paginator sees of one response: the URL fetched, its headers, the decoded body and its records."""

    url: str
    document: Any
    records: list[Any] = field(default_factory=list)
    headers: Mapping[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (any case), or ``None``."""
        wanted = name.lower()
        return next((value for key, value in self.headers.items() if key.lower() == wanted), None)


class Paginator(ABC):
    """Computes the next request from the last one and its response; remembers what it has seen.

    ``ended_by`` says why the last call returned ``None``: ``"no next value"`` when the response had no cursor
    or link (the one case where signs of more pages elsewhere in the response deserve a warning), or the stop
    rule that fired.
    """

    def __init__(self, sync: str, stops: StopRules | None = None) -> None:
        self.sync = sync
        self.stops = stops or StopRules(sync)
        self.ended_by: str | None = None
        self._seen: set[str] = set()

    def next_request(self, request: PageRequest, response: PageResponse, page: int) -> PageRequest | None:
        """The request for the page after ``page``, or ``None`` when this was the last page."""
        self.ended_by = self.stops.reason_to_stop(request, response, page)
        if self.ended_by is not None:
            return None
        following = self._following(request, response, page)
        if following is None:
            self.ended_by = "no next value"
        return following

    @abstractmethod
    def _following(self, request: PageRequest, response: PageResponse, page: int) -> PageRequest | None:
        """The next request by this style's own rule (the stop rules have already said go on)."""

    def _remember(self, what: str, value: str, page: int) -> None:
        if value in self._seen:
            raise PaginationError(
                f"page {page} returned the {what} {redact_url(value)!r} again, which was already followed in "
                "this run: the API is paging in a loop, so the run stops here",
                sync=self.sync,
            )
        self._seen.add(value)


class SinglePagePaginator(Paginator):
    """One request, no paging."""

    def _following(self, request: PageRequest, response: PageResponse, page: int) -> PageRequest | None:
        return None


class StopRules:
    """The stop conditions of ``paging:`` that hold for every style, checked before the next value is read.

    A flag that says the data ended wins over a next link that is still there (Zendesk's export repeats its
    ``after_url`` once ``end_of_stream`` is true).
    """

    def __init__(self, sync: str, paging: Paging | None = None) -> None:
        self.sync = sync
        self.on_empty = bool(paging and paging.stop_on_empty_page)
        self.short_below = paging.limit if paging and paging.stop_on_short_page else None
        self.has_more = _compiled(paging.has_more_path_in_response if paging else None)
        self.is_last = _compiled(paging.is_last_path_in_response if paging else None)
        self.total = _compiled(paging.total_path_in_response if paging else None)
        self.total_pages = _compiled(paging.total_pages_path_in_response if paging else None)
        self.first_page = paging.start_value if paging else 0

    def reason_to_stop(self, request: PageRequest, response: PageResponse, page: int) -> str | None:
        """Why ``page`` is the last one, or ``None`` to go on."""
        if response.document is None and (self.has_more or self.is_last or self.total or self.total_pages):
            return "the response has no body"  # a 204 or an empty body says nothing more is there
        if self.has_more is not None and not self._flag(self.has_more, response.document, page):
            return f"{self.has_more.expression} is false"
        if self.is_last is not None and self._flag(self.is_last, response.document, page):
            return f"{self.is_last.expression} is true"
        if self.on_empty and not response.records:
            return "the page is empty"
        if self.short_below is not None and len(response.records) < self.short_below:
            return f"the page has fewer than {self.short_below} records"
        if self.total is not None:
            total = self.number_at(self.total, response.document, page)
            if request.received + len(response.records) >= total:
                return f"all {total} records at {self.total.expression} were received"
        if self.total_pages is not None and request.offset is not None:
            pages = self.number_at(self.total_pages, response.document, page)
            if request.offset - self.first_page + 1 >= pages:
                return f"all {pages} pages at {self.total_pages.expression} were fetched"
        return None

    def _flag(self, path: CompiledPath, document: Any, page: int) -> bool:
        value = _single(path.get(document))
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        found = "nothing" if value is MISSING else f"{value!r}"
        raise PaginationError(
            f"page {page}: expected true or false at {path.expression!r}, found {found}; check the paging flag's "
            "path against the API's response",
            sync=self.sync,
        )

    def number_at(self, path: CompiledPath, document: Any, page: int) -> int:
        """The whole number (a total) at ``path``, or a :class:`PaginationError` saying what is there instead."""
        value = _single(path.get(document))
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            found = "nothing" if value is MISSING else f"{value!r}"
            raise PaginationError(
                f"page {page}: expected a whole number (the total) at {path.expression!r}, found {found}",
                sync=self.sync,
            )
        return value


def _compiled(path: str | None) -> CompiledPath | None:
    return compile_path(path) if path else None


def _single(value: Any) -> Any:
    """A one-element list (what a JSONPath slice such as ``$.data[-1:].id`` matches) is that element."""
    if isinstance(value, list) and len(value) == 1:
        return value[0]
    return value


def host_of(url: str) -> tuple[str | None, int | None]:
    """``(hostname, port)`` of a URL: what the host guard compares."""
    parts = urlsplit(url)
    return parts.hostname, parts.port


def next_value(value: Any, sync: str, what: str, path: str) -> Any:
    """``None`` when paging should stop (missing, null, empty); the value otherwise.

    A one-element list is its element, so ``$.data[-1:].id`` (the last record's id) works as a cursor.
    """
    value = _single(value)
    if value is MISSING or value is None or value in ("", [], {}):
        return None
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise PaginationError(
            f"expected the {what} at {path!r} to be a string or number, got {type(value).__name__}", sync=sync
        )
    return value
