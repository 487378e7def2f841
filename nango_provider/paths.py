"""Reading values out of decoded JSON: dot paths (``returned.data.objects``) and JSONPath (``$.data[*]``).

A path is compiled once per run and then applied to every response or record. Dot paths are plain key
lookups (a numeric segment also indexes a list); anything that starts with ``$`` is JSONPath, evaluated
with jsonpath-ng's extended parser.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

from nango_provider.exceptions import PathError

MAX_PATH_LENGTH: Final = 1_024
"""The longest path a definition may hold."""
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
MISSING: Final = object()
"""Returned by :meth:`CompiledPath.get` when the path does not exist in the document."""

_DOT_SEGMENT = re.compile(r"[^.\s]+")
_MULTI_MATCH_HINTS = ("*", "..", "?", ":")


@dataclass(frozen=True)
class CompiledPath:
    """A compiled path expression; ``get`` returns the value at the path or :data:`MISSING`."""

    expression: str
    segments: tuple[str, ...] | None
    jsonpath: Any = None

    @property
    def is_jsonpath(self) -> bool:
        """Whether the expression is JSONPath rather than dot notation."""
        return self.jsonpath is not None

    @property
    def may_match_many(self) -> bool:
        """Whether the JSONPath expression can match several values (wildcards, filters, slices)."""
        return self.is_jsonpath and any(hint in self.expression for hint in _MULTI_MATCH_HINTS)

    def get(self, document: Any) -> Any:
        """Return the value at this path in ``document``, or :data:`MISSING`."""
        if self.segments is not None:
            return _get_by_segments(document, self.segments)
        matches = self.jsonpath.find(document)
        if not matches:
            return [] if self._holds_empty_list(document) else MISSING
        if len(matches) == 1 and not self.may_match_many:
            return matches[0].value
        return [match.value for match in matches]

    def _holds_empty_list(self, document: Any) -> bool:
        """Whether ``$.x[*]`` matched nothing because ``$.x`` is an empty list (not because it is missing)."""
        if not self.expression.endswith("[*]"):
            return False
        return compile_path(self.expression[:-3]).get(document) == []


def _get_by_segments(document: Any, segments: tuple[str, ...]) -> Any:
    value = document
    for segment in segments:
        if isinstance(value, dict):
            if segment not in value:
                return MISSING
            value = value[segment]
        elif isinstance(value, list) and segment.lstrip("-").isdigit():
            index = int(segment)
            if not -len(value) <= index < len(value):
                return MISSING
            value = value[index]
        else:
            return MISSING
    return value


def path_text_problem(expression: str) -> str | None:
    """Why ``expression`` is too long or holds control characters to be a definition's path; ``None`` if neither."""
    if len(expression) > MAX_PATH_LENGTH:
        return f"expected at most {MAX_PATH_LENGTH} characters, got {len(expression)}"
    if _CONTROL_CHARACTERS.search(expression):
        return "cannot hold control characters (CR, LF, ...)"
    return None


def compile_path(expression: str) -> CompiledPath:
    """Compile ``expression``; raise :class:`PathError` with the reason when it is not a valid path."""
    if not isinstance(expression, str) or not expression.strip():
        raise PathError(f"a path must be a non-empty string, got {expression!r}")
    return _compile(expression)


@lru_cache(maxsize=1024)
def _compile(expression: str) -> CompiledPath:
    if expression.startswith("$"):
        return CompiledPath(expression, None, _parse_jsonpath(expression))
    segments = tuple(expression.split("."))
    bad = [segment for segment in segments if not _DOT_SEGMENT.fullmatch(segment)]
    if bad:
        raise PathError(
            f"{expression!r} is not a dot path: segments must be non-empty and without spaces "
            "(write 'a.b.c', or JSONPath starting with '$')"
        )
    return CompiledPath(expression, segments)


def _parse_jsonpath(expression: str) -> Any:
    from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError
    from jsonpath_ng.ext import parse

    try:
        return parse(expression)
    except (JsonPathLexerError, JsonPathParserError, Exception) as error:
        raise PathError(f"{expression!r} is not valid JSONPath: {error}") from error


def set_dot_path(document: dict[str, Any], expression: str, value: Any) -> None:
    """Set ``value`` at the dot path ``expression`` in ``document``, creating nested objects as needed."""
    path = compile_path(expression)
    if path.segments is None:
        raise PathError(f"{expression!r}: only dot paths can be written to, not JSONPath")
    target = document
    for segment in path.segments[:-1]:
        child = target.get(segment)
        if not isinstance(child, dict):
            child = {}
            target[segment] = child
        target = child
    target[path.segments[-1]] = value
