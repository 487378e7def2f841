"""Request budgets: at most ``max_requests_per_second`` requests to one API with one credential, however many
threads and processes send them.

The time slots are handed out by a shared ledger (:class:`SlotLedger`; Postgres in a run, see
:mod:`nango_provider.store.budgets`): each reservation takes the next ``count`` free slots of ``interval``
seconds, so two reservations never overlap, on one machine or on several. A budget reserves a few slots at a
time to keep the round trips to the ledger low, and waits for each slot before its request is sent. A
``Retry-After`` (or a 429 or 503) holds off every sender of the budget: the ledger's next free slot moves past it.

This module knows neither HTTP nor Postgres, and imports nothing from Airflow.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Final, Protocol

from nango_provider.exceptions import SyncCancelled

SLOTS_AHEAD_SECONDS: Final = 0.2
"""A budget reserves the slots of about this long at once (at least one, at most :data:`MAX_SLOTS_AT_ONCE`)."""
MAX_SLOTS_AT_ONCE: Final = 16


class SlotLedger(Protocol):
    """Where the slots of budgets are reserved, shared by every process that sends with the same key."""

    def reserve(self, key: str, count: int, interval: float) -> float:
        """Take the next ``count`` free slots of ``interval`` seconds; seconds from now until the first begins
        (0 or less: at once)."""

    def hold_off(self, key: str, seconds: float) -> None:
        """No slot of ``key`` begins earlier than ``seconds`` from now."""


def budget_key(host: str, credentials: Sequence[str]) -> str:
    """The key of a budget: a hash of the API's host and the credential sent to it (never the secret itself)."""
    text = json.dumps([host.lower(), sorted(credentials)], ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


class RateBudget:
    """At most ``rate`` requests a second under ``key``, for every thread of this process and every process
    sharing the ledger. Thread-safe.

    :param ledger: the shared slot ledger.
    :param key: the budget's key (:func:`budget_key`).
    :param rate: requests per second.
    """

    def __init__(self, ledger: SlotLedger, key: str, rate: float) -> None:
        self.key = key
        self.rate = rate
        self.interval = 1.0 / rate
        self._ledger = ledger
        self._batch = max(1, min(MAX_SLOTS_AT_ONCE, math.ceil(rate * SLOTS_AHEAD_SECONDS)))
        self._slots: deque[float] = deque()  # start times (time.monotonic) of slots reserved and not yet used
        self._lock = threading.Lock()

    def acquire(self, stop: threading.Event | None = None) -> float:
        """Wait for this request's slot; the seconds waited. A set ``stop`` ends the wait (:class:`SyncCancelled`)."""
        begins = self._next_slot()
        wait = begins - time.monotonic()
        if wait <= 0:
            return 0.0
        if (stop or threading.Event()).wait(wait):
            raise SyncCancelled(f"stopped while waiting {wait:.1f} s for a request slot of the rate budget")
        return wait

    def hold_off(self, seconds: float) -> None:
        """The API asked to wait (``Retry-After``, 429, 503): no request of this budget, in any process, is sent
        sooner than ``seconds`` from now. Slots already reserved here are given up."""
        with self._lock:
            self._slots.clear()
            self._ledger.hold_off(self.key, seconds)

    def _next_slot(self) -> float:
        with self._lock:
            if not self._slots:
                first = time.monotonic() + self._ledger.reserve(self.key, self._batch, self.interval)
                self._slots.extend(first + index * self.interval for index in range(self._batch))
            return self._slots.popleft()
