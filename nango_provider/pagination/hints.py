"""Signs in a response that an API has more pages: what a run that stopped after its first page warns about."""

from __future__ import annotations

from typing import Any, Final

from nango_provider.pagination.base import PageResponse
from nango_provider.pagination.next_url import link_from_header
from nango_provider.paths import MISSING, compile_path

_NEXT_VALUES: Final = (
    "next",
    "next_url",
    "next_page",
    "next_page_url",
    "nextPageUrl",
    "links.next",
    "paging.next",
    "next_cursor",
    "nextCursor",
    "cursor",
    "next_page_token",
    "nextPageToken",
    "response_metadata.next_cursor",
    "meta.next_cursor",
    "pagination.next",
    "pagination.next_cursor",
    "nextRecordsUrl",
)
_MORE_FLAGS: Final = (
    ("has_more", True),
    ("hasMore", True),
    ("more", True),
    ("info.more_records", True),
    ("additional_data.pagination.more_items_in_collection", True),
    ("isLast", False),
    ("is_last", False),
    ("done", False),
    ("end_of_stream", False),
)


def signs_of_more_pages(response: PageResponse) -> list[str]:
    """What in ``response`` says the API has more pages: a ``Link`` rel=next header, a non-empty next value or
    cursor, or a has-more flag, at the places APIs commonly put them."""
    signs = []
    if link_from_header(response.header("Link"), "next"):
        signs.append('a Link header with rel="next"')
    if not isinstance(response.document, dict):
        return signs
    for path in _NEXT_VALUES:
        value = compile_path(path).get(response.document)
        if _present(value):
            signs.append(f"a non-empty {path!r}")
    for path, more_when in _MORE_FLAGS:
        if compile_path(path).get(response.document) is more_when:
            signs.append(f"{path!r} is {str(more_when).lower()}")
    return signs


def partial_data_warning(signs: list[str]) -> str:
    """The warning for a run that stored only its first page although the response shows ``signs`` of more."""
    return (
        f"page 1 was the only page, but the response shows signs of more: {'; '.join(signs)}. Only the first page "
        "was stored. If the API pages, say how with 'paging:' (type cursor, link, offset or page; see 'How each "
        "API pages' in docs/reference.md)"
    )


def _present(value: Any) -> bool:
    return value is not MISSING and value is not None and value is not False and value not in ("", [], {})
