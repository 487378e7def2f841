"""Paginators: given the request just sent and its decoded response, the next request, or ``None`` to stop.

Three styles, one small class each behind :class:`Paginator`, picked by :func:`paginator_for`:

* ``single``   - no ``paging_response_path``: one request.
* ``cursor``   - the value at ``paging_response_path`` goes into the next request under
  ``paging_request_path``: a query parameter for GET and DELETE, a JSON body field for POST, PUT, PATCH.
* ``next_url`` - ``paging_response_path`` without ``paging_request_path``: the value is the next URL,
  absolute or relative to the URL just fetched, followed as given.

Paging stops when the value is missing, null or empty. A cursor or URL already seen in this run is an
endless loop and raises :class:`PaginationError`. Paginators never send requests.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from nango_provider.definition import SyncDefinition
from nango_provider.exceptions import PaginationError
from nango_provider.paths import MISSING, compile_path, set_dot_path
from nango_provider.redaction import REDACTED, redact_url


@dataclass(frozen=True)
class PageRequest:
    """One request of a run. ``url`` may be relative to the connection's host; ``params`` go in the query.

    ``cursor`` is the cursor that produced this request (cursor paging only).
    """

    method: str
    url: str
    params: Mapping[str, Any] = field(default_factory=dict)
    body: Any = None
    cursor: Any = field(default=None, compare=False)

    def to_checkpoint(self) -> dict[str, Any]:
        """What a checkpoint keeps to resume at this request, holding none of the definition's secrets.

        The cursor alone (the request is rebuilt from the definition), or the next URL with secret-looking
        query values hidden (restored from the definition's ``query_params`` on resume).
        """
        if self.cursor is not None:
            return {"cursor": self.cursor}
        return {"url": redact_url(self.url)}


def request_from_checkpoint(definition: SyncDefinition, checkpoint: Mapping[str, Any]) -> PageRequest:
    """The request a checkpoint stands for (the inverse of :meth:`PageRequest.to_checkpoint`)."""
    if "cursor" in checkpoint:
        paginator = paginator_for(definition)
        if not isinstance(paginator, CursorPaginator):
            raise PaginationError(
                "the checkpoint holds a cursor but the sync has no paging_request_path", sync=definition.name
            )
        return paginator.with_cursor(first_request(definition), checkpoint["cursor"])
    return PageRequest(definition.method, _restore_secrets(checkpoint["url"], definition), {}, definition.body)


def _restore_secrets(url: str, definition: SyncDefinition) -> str:
    parts = urlsplit(url)
    known = {
        **dict(parse_qsl(urlsplit(definition.url).query)),
        **{k: str(v) for k, v in definition.query_params.items()},
    }
    query = [
        (key, known.get(key, value) if value == REDACTED else value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def first_request(definition: SyncDefinition) -> PageRequest:
    """The request that starts a run: the definition's URL, query parameters and body."""
    return PageRequest(definition.method, definition.url, dict(definition.query_params), definition.body)


class Paginator(ABC):
    """Computes the next request from the last one and its response; remembers what it has seen."""

    registry: ClassVar[dict[str, type[Paginator]]] = {}
    name: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        Paginator.registry[cls.name] = cls

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

    name = "single"

    def next_request(self, request: PageRequest, fetched_url: str, document: Any, page: int) -> PageRequest | None:
        return None


class CursorPaginator(Paginator):
    """Sends the cursor found at ``response_path`` back under ``request_path`` (query or body)."""

    name = "cursor"

    def __init__(self, sync: str, *, request_path: str, response_path: str, in_body: bool) -> None:
        super().__init__(sync)
        self.request_path = request_path
        self.response_path = compile_path(response_path)
        self.in_body = in_body
        compile_path(request_path)

    def next_request(self, request: PageRequest, fetched_url: str, document: Any, page: int) -> PageRequest | None:
        cursor = _next_value(self.response_path.get(document), self.sync, "cursor", self.response_path.expression)
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


class NextUrlPaginator(Paginator):
    """Follows the URL found at ``response_path``, resolved against the URL just fetched."""

    name = "next_url"

    def __init__(self, sync: str, *, response_path: str) -> None:
        super().__init__(sync)
        self.response_path = compile_path(response_path)

    def next_request(self, request: PageRequest, fetched_url: str, document: Any, page: int) -> PageRequest | None:
        link = _next_value(self.response_path.get(document), self.sync, "next URL", self.response_path.expression)
        if link is None:
            return None
        if not isinstance(link, str):
            raise PaginationError(
                f"page {page}: expected a URL at {self.response_path.expression!r}, got {type(link).__name__}",
                sync=self.sync,
            )
        url = urljoin(fetched_url, link)
        if _host(url) != _host(fetched_url):
            raise PaginationError(
                f"page {page}: the next URL {redact_url(url)!r} is on another host than the page just fetched; "
                "it is not followed, as that would send the sync's headers and credentials there",
                sync=self.sync,
            )
        self._seen.add(fetched_url)  # a link back to any page already fetched is a loop too
        self._remember("next URL", url, page)
        return PageRequest(request.method, url, {}, request.body)


def _host(url: str) -> tuple[str | None, int | None]:
    parts = urlsplit(url)
    return parts.hostname, parts.port


def _next_value(value: Any, sync: str, what: str, path: str) -> Any:
    """``None`` when paging should stop (missing, null, empty); the value otherwise."""
    if value is MISSING or value is None or value in ("", [], {}):
        return None
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise PaginationError(
            f"expected the {what} at {path!r} to be a string or number, got {type(value).__name__}", sync=sync
        )
    return value


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
