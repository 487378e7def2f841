"""What counts as a secret in a sync, and how it is hidden from logs, errors, XCom and DAG docs."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit, urlunsplit

REDACTED = "***"

_SECRET_NAME = re.compile(
    r"(auth|token|secret|passw|pwd|api[-_]?key|apikey|access[-_]?key|private|signature|sig$|session|cookie|"
    r"credential|bearer|^key$|client[-_]?id)",
    re.IGNORECASE,
)


def is_secret_name(name: str) -> bool:
    """Whether a header, query parameter or body field with this name should be treated as a secret."""
    return bool(_SECRET_NAME.search(name))


def redact_mapping(values: Mapping[str, Any] | None) -> dict[str, Any]:
    """A copy of ``values`` with every secret-looking entry replaced by ``***``, recursively."""
    if not values:
        return {}
    return {key: REDACTED if is_secret_name(str(key)) else redact_json(value) for key, value in values.items()}


def redact_json(value: Any) -> Any:
    """A copy of decoded JSON with every secret-looking object field replaced by ``***``, at any depth."""
    if isinstance(value, Mapping):
        return redact_mapping(value)
    if isinstance(value, list):
        return [redact_json(item) for item in value]
    return value


def redact_url(url: str) -> str:
    """``url`` with user info removed and secret-looking query parameters replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if "@" not in parts.netloc and not any(is_secret_name(key) for key, _ in pairs):
        return url  # nothing to hide: keep the URL exactly as it was
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = urlencode(
        [(key, REDACTED if is_secret_name(key) else value) for key, value in pairs],
        safe="*",
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str, secrets: list[str] | tuple[str, ...]) -> str:
    """``text`` with every occurrence of each known secret value replaced by ``***``."""
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def secret_values(
    headers: Mapping[str, Any] | None, query_params: Mapping[str, Any] | None, body: Any = None
) -> list[str]:
    """The values of secret-looking headers, query parameters and body fields (a bearer token alone too)."""
    found: list[str] = []
    for mapping in (headers or {}, query_params or {}):
        for key, value in mapping.items():
            if is_secret_name(str(key)) and value is not None:
                found += _with_credential(str(value))
    found += _secret_body_values(body)
    return found


def url_secret_values(url: str) -> list[str]:
    """The password of a URL's user info and its secret-looking query values, as written and decoded."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found = [parts.password] if parts.password else []
    for pair in parts.query.split("&"):
        key, _, value = pair.partition("=")
        if value and is_secret_name(unquote_plus(key)):
            found += [value, unquote_plus(value)]
    return found


def _with_credential(text: str) -> list[str]:
    scheme, _, credential = text.partition(" ")
    return [text, credential] if credential and scheme.isalpha() else [text]


def _secret_body_values(body: Any) -> list[str]:
    if isinstance(body, list):
        return [value for item in body for value in _secret_body_values(item)]
    if not isinstance(body, Mapping):
        return []
    found: list[str] = []
    for key, value in body.items():
        if is_secret_name(str(key)) and isinstance(value, str | int | float) and not isinstance(value, bool):
            found += _with_credential(str(value))
        else:
            found += _secret_body_values(value)
    return found
