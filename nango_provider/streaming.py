"""Overlap fetching and writing: a bounded queue between a fetch thread and the caller.

Memory stays bounded by ``depth`` items in flight; an exception in the producer is raised in the consumer,
and a consumer that stops early (``close()`` or leaving its loop) stops the producer. Stopping never waits
long for the producer: the ``stop`` event is set (a producer that sleeps should wait on it), and a producer
busy elsewhere (a request in flight) is left to finish on its own, as a daemon thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Final, Generic, TypeVar

T = TypeVar("T")
_DONE: Final = object()
_POLL_SECONDS: Final = 0.1
JOIN_SECONDS: Final = 2.0
"""How long :meth:`Prefetcher.close` waits for the fetch thread to end."""


class Prefetcher(Generic[T]):
    """Iterate ``source`` in a background thread, at most ``depth`` items ahead of the consumer.

    :param stop: set when the consumer stops; the producer's waits (a retry's back-off) should wait on it.
    :param check: called while the consumer waits for the next item; an exception it raises ends the iteration
        (a cancelled run raises here).
    """

    def __init__(
        self,
        source: Iterator[T],
        depth: int = 2,
        *,
        stop: threading.Event | None = None,
        check: Callable[[], None] | None = None,
    ) -> None:
        self._source = source
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stopped = stop or threading.Event()
        self._check = check
        self._thread = threading.Thread(target=self._produce, name="nango-prefetch", daemon=True)
        self._held: object = None  # the end or the producer's error, met by ready() and left for the iteration

    def __iter__(self) -> Iterator[T]:
        self._thread.start()
        try:
            while True:
                item = self._next()
                if item is _DONE:
                    return
                if isinstance(item, _Failure):
                    raise item.error
                yield item  # type: ignore[misc]
        finally:
            self.close()

    def close(self, timeout: float = JOIN_SECONDS) -> None:
        """Stop the producer and wait for it, at most ``timeout`` seconds; safe to call twice."""
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def ready(self) -> T | None:
        """The next item if the producer has handed it over already, else ``None``; never waits, never raises.

        Items it returns are not yielded by the iteration; the end of the items and the producer's error are
        left for the iteration, which raises the error."""
        if self._held is not None:
            return None
        try:
            item = self._queue.get_nowait()
        except queue.Empty:
            return None
        if item is _DONE or isinstance(item, _Failure):
            self._held = item
            return None
        return item  # type: ignore[return-value]

    def _next(self) -> object:
        if self._held is not None:
            item, self._held = self._held, None
            return item
        while True:
            if self._check is not None:
                self._check()
            try:
                return self._queue.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                continue

    def _produce(self) -> None:
        try:
            for item in self._source:
                if not self._put(item):
                    return
            self._put(_DONE)
        except BaseException as error:  # handed to the consumer, which raises it
            self._put(_Failure(error))
        finally:
            close = getattr(self._source, "close", None)
            if close is not None:
                close()

    def _put(self, item: object) -> bool:
        while not self._stopped.is_set():
            try:
                self._queue.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error
