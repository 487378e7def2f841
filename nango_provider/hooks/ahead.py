"""``PagesAhead``: with parallel paging, the planned requests of a run, sent ahead in a small thread pool.

With parallel paging (offset or page numbers and a known total), up to ``concurrency`` planned requests are in
flight at once. One page at a time, every request is sent by the thread that pages: it goes on to the next
request as soon as it has handed a page on (the engine turns records into rows and writes them in other
threads), so no hand-over between threads delays a request. Pages are still taken in order and
each page's next request (its checkpoint) is still computed from the page before, so a failure and a retry
never skip or repeat a page: a page fetched ahead of a failed one is simply fetched again by the retry.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from nango_provider.pagination import PageRequest

Fetch = Callable[[PageRequest, int, threading.Event], Any]
"""Sends one request (with its retries) for a page number; a set event ends a wait between retries."""
_POLL_SECONDS = 0.05


class _EitherSet(threading.Event):
    """Set when it is set itself or when ``other`` is (a cancelled run); waits look at ``other`` every 50 ms."""

    def __init__(self, other: threading.Event | None) -> None:
        super().__init__()
        self._other = other

    def is_set(self) -> bool:
        return super().is_set() or (self._other is not None and self._other.is_set())

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.is_set():
            left = _POLL_SECONDS if deadline is None else min(_POLL_SECONDS, deadline - time.monotonic())
            if left <= 0:
                return False
            super().wait(left)
        return True


class PagesAhead:
    """Hands out each page's response, from a request sent ahead when there is one.

    :param stop: the run's cancellation event: once set, no fetch waits to retry any longer.
    """

    def __init__(self, fetch: Fetch, concurrency: int = 1, *, stop: threading.Event | None = None) -> None:
        self._fetch = fetch
        self._concurrency = concurrency
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="nango-page")
        self._ahead: list[tuple[PageRequest, Future[Any]]] = []
        self._closed = _EitherSet(stop)

    def get(self, request: PageRequest, number: int) -> Any:
        """The response to ``request``: sent ahead (waiting for it, raising its error) or sent now."""
        for position, (sent, future) in enumerate(self._ahead):
            if sent == request:
                del self._ahead[position]
                return future.result()
        return self._fetch(request, number, self._closed)

    def send_ahead(self, planned: Sequence[PageRequest], number: int) -> None:
        """Send ``planned`` (the requests for pages ``number``, ``number + 1``, ...) not sent yet, keeping at most
        ``concurrency`` in flight."""
        for position, request in enumerate(planned):
            if len(self._ahead) >= self._concurrency:
                return
            if all(sent != request for sent, _ in self._ahead):
                future = self._pool.submit(self._fetch, request, number + position, self._closed)
                self._ahead.append((request, future))

    def close(self) -> None:
        """Drop what was sent ahead and not used; wait for the requests in flight (none waits to retry)."""
        self._closed.set()
        for _, future in self._ahead:
            future.cancel()
        self._ahead.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)
