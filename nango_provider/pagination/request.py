"""``PageRequest``: one request of a run, and the opaque checkpoint a retried task resumes from."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from nango_provider.definition import SyncDefinition
from nango_provider.paths import set_dot_path
from nango_provider.redaction import REDACTED, redact_url


@dataclass(frozen=True)
class PageRequest:
    """One request of a run. ``url`` may be relative to the connection's host; ``params`` go in the query.

    ``cursor`` is the cursor that produced this request (cursor paging only). ``offset`` is the offset or page
    number it asks for and ``received`` the records received before it in the run (offset and page paging only).
    """

    method: str
    url: str
    params: Mapping[str, Any] = field(default_factory=dict)
    body: Any = None
    cursor: Any = field(default=None, compare=False)
    offset: int | None = field(default=None, compare=False)
    received: int = field(default=0, compare=False)

    def to_checkpoint(self) -> dict[str, Any]:
        """What a checkpoint keeps to resume at this request, holding none of the definition's secrets.

        The cursor alone, or the offset and the records received so far (the request is rebuilt from the
        definition), or the next URL with secret-looking query values hidden (restored from the definition's
        ``query_params`` on resume).
        """
        if self.cursor is not None:
            return {"cursor": self.cursor}
        if self.offset is not None:
            return {"offset": self.offset, "received": self.received}
        return {"url": redact_url(self.url)}


def first_request(definition: SyncDefinition, since: Any = None) -> PageRequest:
    """The request that starts a run: the definition's URL, query parameters and body, with the page size and
    the first offset or page number when ``paging`` asks for them, and ``since`` (the value an incremental run
    asks from) under ``incremental.request_name``."""
    request = PageRequest(definition.method, definition.url, dict(definition.query_params), definition.body)
    in_body = definition.uses_body_cursor
    if definition.incremental is not None and since is not None:
        request = with_value(request, definition.incremental.request_name, since, in_body=in_body)
    paging = definition.paging
    if paging is None:
        return request
    if paging.limit_name_in_request and paging.limit is not None:
        request = with_value(request, paging.limit_name_in_request, paging.limit, in_body=in_body)
    if paging.counted and paging.position_name:
        request = with_value(request, paging.position_name, paging.start_value, in_body=in_body)
        request = replace(request, offset=paging.start_value, received=0)
    return request


def with_value(request: PageRequest, name: str, value: Any, *, in_body: bool) -> PageRequest:
    """``request`` with ``value`` under ``name``: a body field (dot path) or a query parameter, replacing any
    earlier value there; the request's body is copied, never changed."""
    if in_body:
        body: dict[str, Any] = dict(copy.deepcopy(request.body)) if isinstance(request.body, Mapping) else {}
        set_dot_path(body, name, value)
        return replace(request, body=body)
    return replace(request, params={**request.params, name: value})


def restore_secrets(url: str, definition: SyncDefinition) -> str:
    """``url`` from a checkpoint with its hidden query values put back from the definition."""
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
