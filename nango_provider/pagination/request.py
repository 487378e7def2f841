"""``PageRequest``: one request of a run, and the opaque checkpoint a retried task resumes from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from nango_provider.definition import SyncDefinition
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


def first_request(definition: SyncDefinition) -> PageRequest:
    """The request that starts a run: the definition's URL, query parameters and body."""
    return PageRequest(definition.method, definition.url, dict(definition.query_params), definition.body)


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
