"""The ``paging:`` field of a sync definition: which paging style an API uses and when its data ends.

Field names follow Nango's paginator where it has one (``cursor``, ``link`` with ``link_rel_in_response_header`` /
``link_path_in_response_body``, ``offset`` with ``offset_name_in_request``, ``offset_start_value`` and
``offset_calculation_method``), so a definition written for Nango reads the same here. This module validates the
mapping into a frozen :class:`Paging`; :mod:`nango_provider.pagination` turns it into a paginator. Like
:mod:`nango_provider.definition` it touches neither the network nor the database.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from nango_provider.exceptions import PathError, SyncDefinitionError
from nango_provider.paths import compile_path, path_text_problem

PAGING_TYPES: Final = ("cursor", "link", "offset", "page")
OFFSET_METHODS: Final = ("by-response-size", "by-limit", "per-page")
"""How the offset moves: by the records received, by ``limit``, or by one (a page number)."""
DEFAULT_LINK_REL: Final = "next"
MAX_CONCURRENCY: Final = 10
"""At most as many pages at once as the HTTP session keeps connections (10)."""

_TYPE_FIELDS: Final = {
    "cursor": ("cursor_name_in_request", "cursor_path_in_response"),
    "link": ("link_rel_in_response_header", "link_path_in_response_body"),
    "offset": ("offset_name_in_request", "offset_start_value", "offset_calculation_method"),
    "page": ("page_name_in_request", "page_start_value", "total_pages_path_in_response"),
}
_COUNTED_TYPES: Final = ("offset", "page")

Fail = Callable[[str, str], SyncDefinitionError]
"""Builds the definition error for ``(field, message)``."""


@dataclass(frozen=True)
class Paging:
    """How a sync pages: the style, where the next page's value comes from and goes, and when to stop."""

    type: str  # cursor, link, offset or page
    cursor_name_in_request: str | None = None  # cursor: query parameter, or body field (dot path) for POST/PUT/PATCH
    cursor_path_in_response: str | None = None  # cursor: where it is in a response (``$.data[-1:].id``: last record)
    link_rel_in_response_header: str | None = None  # link: relation in the ``Link`` header (default ``next``)
    link_path_in_response_body: str | None = None  # link: where the next URL is in a response instead
    offset_name_in_request: str | None = None  # offset: query parameter or body field
    offset_start_value: int = 0  # offset: value of the first request
    offset_calculation_method: str = "by-response-size"  # offset: by-response-size, by-limit or per-page
    page_name_in_request: str | None = None  # page: query parameter or body field of the page number
    page_start_value: int = 1  # page: number of the first page
    limit_name_in_request: str | None = None  # page-size parameter, sent with every request of the run
    limit: int | None = None  # the page size asked for
    stop_on_empty_page: bool = False  # a page without records is the last one (always true for offset and page)
    stop_on_short_page: bool = False  # a page with fewer than ``limit`` records is the last one (opt-in)
    total_path_in_response: str | None = None  # offset, page: total number of records; stop once all are received
    total_pages_path_in_response: str | None = None  # page: total number of pages; stop after the last
    has_more_path_in_response: str | None = None  # a boolean that is false on the last page (``has_more``)
    is_last_path_in_response: str | None = None  # a boolean that is true on the last page (``isLast``, ``done``)
    concurrency: int = 1  # offset, page with a known total: fetch up to this many pages at once

    @property
    def counted(self) -> bool:
        """Whether the style counts its way through the data (offset or page number)."""
        return self.type in _COUNTED_TYPES

    @property
    def position_name(self) -> str | None:
        """The request parameter or body field of an offset or page number."""
        return self.offset_name_in_request if self.type == "offset" else self.page_name_in_request

    @property
    def start_value(self) -> int:
        """The offset or page number of the first request."""
        return self.offset_start_value if self.type == "offset" else self.page_start_value

    @property
    def parallel(self) -> bool:
        """Whether pages are fetched several at once (validated: a known total and a fixed step)."""
        return self.concurrency > 1

    @property
    def step(self) -> str:
        """How the offset moves after a page: one of :data:`OFFSET_METHODS`."""
        return self.offset_calculation_method if self.type == "offset" else "per-page"

    def shown(self) -> dict[str, Any]:
        """The fields that are set (not defaults), for display."""
        defaults = Paging(self.type, stop_on_empty_page=self.counted)
        return {
            item.name: getattr(self, item.name)
            for item in dataclasses.fields(self)
            if item.name == "type" or getattr(self, item.name) != getattr(defaults, item.name)
        }


PAGING_FIELD_NAMES: Final = tuple(item.name for item in dataclasses.fields(Paging))


def parse_paging(value: Any, fail: Fail) -> Paging | None:
    """Validate the ``paging:`` mapping (or an already built :class:`Paging`) field by field."""
    if value is None or isinstance(value, Paging):
        return value
    if not isinstance(value, Mapping):
        raise fail("paging", f"expected a mapping such as {{type: cursor, ...}}, got {type(value).__name__}")
    return _PagingValidator(value, fail).build()


class _PagingValidator:
    def __init__(self, fields: Mapping[str, Any], fail: Fail) -> None:
        self.fields = {key: item for key, item in fields.items() if item is not None}
        self._fail = fail

    def fail(self, name: str, message: str) -> SyncDefinitionError:
        return self._fail(f"paging.{name}", message)

    def build(self) -> Paging:
        self.refuse_unknown()
        paging_type = self.paging_type()
        self.refuse_other_types_fields(paging_type)
        paging = Paging(
            type=paging_type,
            cursor_name_in_request=self.path("cursor_name_in_request", dot_only=True),
            cursor_path_in_response=self.path("cursor_path_in_response"),
            link_rel_in_response_header=self.link_rel(paging_type),
            link_path_in_response_body=self.path("link_path_in_response_body"),
            offset_name_in_request=self.path("offset_name_in_request", dot_only=True),
            offset_start_value=self.integer("offset_start_value", minimum=0, default=0),
            offset_calculation_method=self.offset_method(),
            page_name_in_request=self.path("page_name_in_request", dot_only=True),
            page_start_value=self.integer("page_start_value", minimum=0, default=1),
            limit_name_in_request=self.path("limit_name_in_request", dot_only=True),
            limit=self.integer("limit", minimum=1, default=None),
            stop_on_empty_page=self.flag("stop_on_empty_page", default=paging_type in _COUNTED_TYPES),
            stop_on_short_page=self.flag("stop_on_short_page", default=False),
            total_path_in_response=self.path("total_path_in_response"),
            total_pages_path_in_response=self.path("total_pages_path_in_response"),
            has_more_path_in_response=self.path("has_more_path_in_response"),
            is_last_path_in_response=self.path("is_last_path_in_response"),
            concurrency=self.integer("concurrency", minimum=1, default=1),
        )
        self.check_combinations(paging)
        return paging

    def check_concurrency(self, paging: Paging) -> None:
        """Parallel pages need to know every page's request in advance: a total and a fixed step."""
        if not paging.parallel:
            return
        if paging.concurrency > MAX_CONCURRENCY:
            raise self.fail("concurrency", f"expected an integer from 1 to {MAX_CONCURRENCY}, got {paging.concurrency}")
        if not paging.counted:
            raise self.fail(
                "concurrency",
                f"only offset and page paging can fetch pages at once; {paging.type} paging learns each next "
                "request from the page before",
            )
        if paging.total_pages_path_in_response is None and paging.total_path_in_response is None:
            raise self.fail(
                "concurrency",
                "needs total_path_in_response (or total_pages_path_in_response): the pages to fetch at once must "
                "be known from the first page",
            )
        if paging.step == "by-response-size":
            raise self.fail(
                "concurrency",
                "needs a fixed step: offset_calculation_method by-limit or per-page (by-response-size knows the "
                "next offset only once the page before has arrived)",
            )
        if paging.total_pages_path_in_response is None and paging.limit is None:
            raise self.fail(
                "concurrency", "needs limit_name_in_request and limit: the page size that divides the total into pages"
            )

    def refuse_unknown(self) -> None:
        for key in self.fields:
            if key in PAGING_FIELD_NAMES:
                continue
            if key == "response_path":  # part of Nango's paginate block, a field of the sync itself here
                raise self.fail(str(key), "is a field of the sync, not of paging: move it up one level")
            longer = [name for name in PAGING_FIELD_NAMES if name.startswith(str(key))]
            nearest = longer or difflib.get_close_matches(str(key), PAGING_FIELD_NAMES, n=1, cutoff=0.6)
            hint = f"did you mean {nearest[0]!r}?" if nearest else f"valid fields: {', '.join(PAGING_FIELD_NAMES)}"
            raise self.fail(str(key), f"unknown paging field; {hint}")

    def paging_type(self) -> str:
        value = self.fields.get("type")
        if value is None:
            raise self.fail("type", f"is required: one of {', '.join(PAGING_TYPES)}")
        if value not in PAGING_TYPES:
            raise self.fail("type", f"expected one of {', '.join(PAGING_TYPES)}, got {value!r}")
        return str(value)

    def refuse_other_types_fields(self, paging_type: str) -> None:
        for other, names in _TYPE_FIELDS.items():
            for name in names:
                if other != paging_type and name in self.fields:
                    raise self.fail(name, f"belongs to paging type {other!r}, but this sync's type is {paging_type!r}")

    def path(self, name: str, *, dot_only: bool = False) -> str | None:
        value = self.fields.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.fail(name, f"expected a path string, got {type(value).__name__}")
        problem = path_text_problem(value)
        if problem is not None:
            raise self.fail(name, problem)
        try:
            compiled = compile_path(value)
        except PathError as error:
            raise self.fail(name, str(error)) from None
        if dot_only and compiled.is_jsonpath:
            raise self.fail(name, f"expected a parameter name or a dot path such as 'page.cursor', got {value!r}")
        return value

    def link_rel(self, paging_type: str) -> str | None:
        value = self.fields.get("link_rel_in_response_header")
        if value is None:
            in_body = "link_path_in_response_body" in self.fields
            return DEFAULT_LINK_REL if paging_type == "link" and not in_body else None
        if not isinstance(value, str) or not value.strip() or any(char in value for char in ' ,;"<>'):
            raise self.fail("link_rel_in_response_header", f"expected a link relation such as 'next', got {value!r}")
        if "link_path_in_response_body" in self.fields:
            raise self.fail(
                "link_rel_in_response_header",
                "give either link_rel_in_response_header (the Link header) or link_path_in_response_body "
                "(a URL in the body), not both",
            )
        return value

    def offset_method(self) -> str:
        value = self.fields.get("offset_calculation_method", "by-response-size")
        if value not in OFFSET_METHODS:
            raise self.fail(
                "offset_calculation_method",
                f"expected one of {', '.join(OFFSET_METHODS)} (add the records received, add limit, or add 1), "
                f"got {value!r}",
            )
        return str(value)

    def integer(self, name: str, *, minimum: int, default: int | None) -> Any:
        value = self.fields.get(name, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(name, f"expected an integer >= {minimum}, got {value!r}")
        return value

    def flag(self, name: str, *, default: bool) -> bool:
        value = self.fields.get(name, default)
        if not isinstance(value, bool):
            raise self.fail(name, f"expected true or false, got {value!r}")
        return value

    def check_combinations(self, paging: Paging) -> None:
        required = {
            "cursor": ("cursor_name_in_request", "cursor_path_in_response"),
            "offset": ("offset_name_in_request",),
            "page": ("page_name_in_request",),
        }
        for name in required.get(paging.type, ()):
            if getattr(paging, name) is None:
                raise self.fail(name, f"is required with paging type {paging.type!r}")
        if (paging.limit is None) != (paging.limit_name_in_request is None):
            missing = "limit" if paging.limit is None else "limit_name_in_request"
            raise self.fail(
                missing, "limit_name_in_request and limit go together: the page-size parameter and the size asked for"
            )
        if paging.counted and not paging.stop_on_empty_page:
            raise self.fail(
                "stop_on_empty_page",
                f"{paging.type} paging always stops at an empty page: nothing else ends it reliably",
            )
        if paging.stop_on_short_page and paging.limit is None:
            raise self.fail("stop_on_short_page", "needs limit_name_in_request and limit: the page size to compare")
        if paging.step == "by-limit" and paging.limit is None:
            raise self.fail(
                "offset_calculation_method", "by-limit needs limit_name_in_request and limit: the step to add"
            )
        if paging.total_path_in_response and not paging.counted:
            raise self.fail(
                "total_path_in_response",
                f"is for offset and page paging; with {paging.type} paging the missing next value ends the data",
            )
        if paging.total_path_in_response and paging.total_pages_path_in_response:
            raise self.fail(
                "total_pages_path_in_response",
                "give one total: total_path_in_response (records) or total_pages_path_in_response (pages)",
            )
        self.check_concurrency(paging)
        if paging.has_more_path_in_response and paging.is_last_path_in_response:
            raise self.fail(
                "is_last_path_in_response",
                "give one flag: has_more_path_in_response (false on the last page) or is_last_path_in_response "
                "(true on the last page)",
            )
