"""Unit tests of nango_provider/redaction.py: what counts as a secret and how it is hidden."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from nango_provider.redaction import (
    REDACTED,
    is_secret_name,
    redact_mapping,
    redact_text,
    redact_url,
    secret_values,
    url_secret_values,
)


@pytest.mark.parametrize(
    "name",
    [
        "Authorization",
        "authorization",
        "Proxy-Authorization",
        "X-API-Key",
        "api_key",
        "api-key",
        "apikey",
        "APIKEY",
        "access_token",
        "X-Access-Key",
        "refresh_token",
        "client_secret",
        "client_id",
        "password",
        "passwd",
        "pwd",
        "Cookie",
        "Set-Cookie",
        "session_id",
        "private_key",
        "signature",
        "sig",
        "key",
        "KEY",
        "credentials",
        "bearer",
    ],
)
def test_secret_names(name: str) -> None:
    assert is_secret_name(name) is True


@pytest.mark.parametrize(
    "name", ["Accept", "Content-Type", "limit", "cursor", "page_size", "after", "id", "q", "monkey", "keyword", "sigma"]
)
def test_ordinary_names(name: str) -> None:
    assert is_secret_name(name) is False


def test_redact_mapping() -> None:
    values: dict[str, Any] = {
        "Authorization": "Bearer abc",
        "limit": 10,
        "nested": {"password": "p", "page": {"size": 5, "token": "t"}},
        "items": [{"api_key": "k", "name": "n"}, "plain", 3, [{"secret": "s"}]],
        "key": None,
    }
    original = copy.deepcopy(values)
    assert redact_mapping(values) == {
        "Authorization": REDACTED,
        "limit": 10,
        "nested": {"password": REDACTED, "page": {"size": 5, "token": REDACTED}},
        "items": [{"api_key": REDACTED, "name": "n"}, "plain", 3, [{"secret": REDACTED}]],
        "key": REDACTED,
    }
    assert values == original
    assert REDACTED == "***"


@pytest.mark.parametrize("values", [None, {}])
def test_redact_mapping_of_nothing(values: dict[str, Any] | None) -> None:
    assert redact_mapping(values) == {}


def test_redact_mapping_with_a_secret_holding_a_mapping() -> None:
    assert redact_mapping({"credentials": {"user": "u", "pass": "p"}}) == {"credentials": REDACTED}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://user:pa55word@api.example.com:8443/v1?api_key=k123&limit=5#frag",
            "https://api.example.com:8443/v1?api_key=***&limit=5#frag",
        ),
        ("https://user@api.example.com/p", "https://api.example.com/p"),
        ("https://api.example.com/v1/items?limit=5&after=abc", "https://api.example.com/v1/items?limit=5&after=abc"),
        ("https://api.example.com/v1/items", "https://api.example.com/v1/items"),
        ("https://api.example.com/x?token=a&token=b&page=2", "https://api.example.com/x?token=***&token=***&page=2"),
        (
            "https://api.example.com/x?Signature=abc&X-Amz-Credential=c",
            "https://api.example.com/x?Signature=***&X-Amz-Credential=***",
        ),
        ("https://api.example.com/x?secret=", "https://api.example.com/x?secret=***"),
        ("/relative?api_key=1&page=2", "/relative?api_key=***&page=2"),
        ("http://[bad", "http://[bad"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_redact_text_replaces_known_secrets() -> None:
    text = "GET https://x.example.com/?api_key=k3y1234 with Bearer t0k3nvalue failed"
    assert redact_text(text, ["k3y1234", "Bearer t0k3nvalue", "t0k3nvalue"]) == (
        "GET https://x.example.com/?api_key=*** with *** failed"
    )


def test_redact_text_longest_secret_first() -> None:
    assert redact_text("xabcdefx", ["abcd", "abcdef"]) == "x***x"
    assert redact_text("xabcdefx", ("abcdef", "abcd")) == "x***x"


def test_redact_text_ignores_short_and_empty_secrets() -> None:
    assert redact_text("a b abc abcd", ["", "a", "abc"]) == "a b abc abcd"
    assert redact_text("a b abc abcd", ["abcd"]) == "a b abc ***"
    assert redact_text("nothing", []) == "nothing"


def test_secret_values() -> None:
    headers = {"Authorization": "Bearer t0k3n", "Accept": "application/json", "X-Api-Key": "hk"}
    params = {"api_key": 12345, "limit": 5, "token": None}
    assert secret_values(headers, params) == ["Bearer t0k3n", "t0k3n", "hk", "12345"]


def test_secret_values_keeps_a_non_scheme_value_whole() -> None:
    assert secret_values({"Authorization": "t0k3n"}, None) == ["t0k3n"]
    assert secret_values({"Cookie": "a=1; b=2"}, None) == ["a=1; b=2"]
    assert secret_values({"X-Token": "v2 abc"}, None) == ["v2 abc"]
    assert secret_values(None, None) == []


def test_url_secret_values_are_user_info_password_and_secret_query_values_as_written_and_decoded() -> None:
    url = "https://me:pa55word@api.example.com/x?client_id=abc%2Fdef&sig=s1g-value&page=2&api_key="
    assert url_secret_values(url) == ["pa55word", "abc%2Fdef", "abc/def", "s1g-value", "s1g-value"]
    assert url_secret_values("/relative?limit=5") == []
    assert url_secret_values("http://[bad") == []
