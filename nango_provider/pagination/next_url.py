"""Next-URL paging: the value at ``paging_response_path`` is the URL of the next page."""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin

from nango_provider.exceptions import PaginationError
from nango_provider.pagination.base import Paginator, host_of, next_value
from nango_provider.pagination.request import PageRequest
from nango_provider.paths import compile_path
from nango_provider.redaction import redact_url


class NextUrlPaginator(Paginator):
    """Follows the URL found at ``response_path``, resolved against the URL just fetched."""

    def __init__(self, sync: str, *, response_path: str) -> None:
        super().__init__(sync)
        self.response_path = compile_path(response_path)

    def next_request(self, request: PageRequest, fetched_url: str, document: Any, page: int) -> PageRequest | None:
        link = next_value(self.response_path.get(document), self.sync, "next URL", self.response_path.expression)
        if link is None:
            return None
        if not isinstance(link, str):
            raise PaginationError(
                f"page {page}: expected a URL at {self.response_path.expression!r}, got {type(link).__name__}",
                sync=self.sync,
            )
        url = urljoin(fetched_url, link)
        if host_of(url) != host_of(fetched_url):
            raise PaginationError(
                f"page {page}: the next URL {redact_url(url)!r} is on another host than the page just fetched; "
                "it is not followed, as that would send the sync's headers and credentials there",
                sync=self.sync,
            )
        self._seen.add(fetched_url)  # a link back to any page already fetched is a loop too
        self._remember("next URL", url, page)
        return PageRequest(request.method, url, {}, request.body)
