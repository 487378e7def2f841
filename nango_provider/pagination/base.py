"""The paginator base class and what every style shares: the loop guard and the reading of a next value."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any
from urllib.parse import urlsplit

from nango_provider.exceptions import PaginationError
from nango_provider.pagination.request import PageRequest
from nango_provider.paths import MISSING
from nango_provider.redaction import redact_url


class Paginator(ABC):
    """Computes the next request from the last one and its response; remembers what it has seen."""

    def __init__(self, sync: str) -> None:
        self.sync = sync
        self._seen: set[str] = set()

    @abstractmethod
    def next_request(self, request: PageRequest, fetched_url: str, document: Any, page: int) -> PageRequest | None:
        """The request for the page after ``page``, or ``None`` when this was the last page."""

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

    def next_request(self, request: PageRequest, fetched_url: str, document: Any, page: int) -> PageRequest | None:
        return None


def host_of(url: str) -> tuple[str | None, int | None]:
    """``(hostname, port)`` of a URL: what the host guard compares."""
    parts = urlsplit(url)
    return parts.hostname, parts.port


def next_value(value: Any, sync: str, what: str, path: str) -> Any:
    """``None`` when paging should stop (missing, null, empty); the value otherwise."""
    if value is MISSING or value is None or value in ("", [], {}):
        return None
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise PaginationError(
            f"expected the {what} at {path!r} to be a string or number, got {type(value).__name__}", sync=sync
        )
    return value
