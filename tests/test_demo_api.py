"""The demo API's latency option: data answers wait, its own ``/_demo/`` endpoints do not."""

from __future__ import annotations

import time

import pytest
import requests

from devtools.demo_api import DemoApi


def timed_get(url: str) -> float:
    started = time.monotonic()
    requests.get(url, timeout=10).raise_for_status()
    return time.monotonic() - started


def test_latency_delays_data_answers_but_not_the_demo_endpoints() -> None:
    with DemoApi(records=10, latency=0.5) as api:
        assert timed_get(f"{api.url}/api/v2/pokemon?limit=5") >= 0.5
        assert timed_get(f"{api.url}/_demo/health") < 0.5


def test_negative_latency_is_refused() -> None:
    with pytest.raises(ValueError, match="latency"):
        DemoApi(latency=-1)
