"""Next-URL paging: the next page's URL is in the response body (``paging_response_path`` or
``paging.link_path_in_response_body``) or in its ``Link`` header (``paging.link_rel_in_response_header``)."""

from __future__ import annotations

import re
from urllib.parse import urljoin

from nango_provider.exceptions import PaginationError
from nango_provider.pagination.base import PageResponse, Paginator, StopRules, host_of, next_value
from nango_provider.pagination.request import PageRequest
from nango_provider.paths import compile_path
from nango_provider.redaction import redact_url

_LINK_VALUE = re.compile(r"<([^>]*)>((?:\s*;\s*[^;,]+)*)")
_REL = re.compile(r"""\brel\s*=\s*(?:"([^"]*)"|([^\s;,"]+))""", re.IGNORECASE)


class NextUrlPaginator(Paginator):
    """Follows the next URL, resolved against the URL just fetched, on the same host only.

    :param response_path: where the URL is in the body; ``None`` with ``link_rel`` reads the ``Link`` header.
    :param link_rel: the relation of the next page in the ``Link`` header (``next``).
    """

    def __init__(
        self,
        sync: str,
        *,
        response_path: str | None = None,
        link_rel: str | None = None,
        stops: StopRules | None = None,
    ) -> None:
        super().__init__(sync, stops)
        if (response_path is None) == (link_rel is None):
            raise ValueError("give response_path or link_rel")
        self.response_path = compile_path(response_path) if response_path else None
        self.link_rel = link_rel

    @property
    def source(self) -> str:
        """Where the next URL comes from, for messages."""
        if self.response_path is not None:
            return repr(self.response_path.expression)
        return f"the Link header (rel={self.link_rel!r})"

    def _following(self, request: PageRequest, response: PageResponse, page: int) -> PageRequest | None:
        if self.response_path is not None:
            found = self.response_path.get(response.document)
            link = next_value(found, self.sync, "next URL", self.response_path.expression)
        else:
            link = link_from_header(response.header("Link"), self.link_rel or "next")
        if link is None:
            return None
        if not isinstance(link, str):
            raise PaginationError(
                f"page {page}: expected a URL at {self.source}, got {type(link).__name__}", sync=self.sync
            )
        url = urljoin(response.url, link)
        if host_of(url) != host_of(response.url):
            raise PaginationError(
                f"page {page}: the next URL {redact_url(url)!r} is on another host than the page just fetched; "
                "it is not followed, as that would send the sync's headers and credentials there",
                sync=self.sync,
            )
        self._seen.add(response.url)  # a link back to any page already fetched is a loop too
        self._remember("next URL", url, page)
        return PageRequest(request.method, url, {}, request.body)


def link_from_header(header: str | None, rel: str) -> str | None:
    """The URL of relation ``rel`` in an RFC 8288 ``Link`` header (``<url>; rel="next", ...``), or ``None``."""
    if not header:
        return None
    for match in _LINK_VALUE.finditer(header):
        for found in _REL.finditer(match.group(2)):
            relations = (found.group(1) or found.group(2) or "").lower().split()
            if rel.lower() in relations:
                return match.group(1).strip() or None
    return None
