"""Unit tests of nango_provider/streaming.py: the bounded prefetch queue between fetching and writing."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from nango_provider.streaming import Prefetcher

TIMEOUT = 2.0


class Source:
    """A generator source that records what it produced, on which thread, and whether its ``finally`` ran."""

    def __init__(self, count: int | None = None, fail_after: int | None = None) -> None:
        self.count = count
        self.fail_after = fail_after
        self.produced: list[int] = []
        self.finished = threading.Event()
        self.thread: threading.Thread | None = None
        self.error = RuntimeError("source failed")

    def __iter__(self) -> Iterator[int]:
        return self.generate()

    def generate(self) -> Iterator[int]:
        self.thread = threading.current_thread()
        try:
            index = 0
            while self.count is None or index < self.count:
                if self.fail_after is not None and index == self.fail_after:
                    raise self.error
                self.produced.append(index)
                yield index
                index += 1
        finally:
            self.finished.set()


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.002)


def test_yields_all_items_in_order() -> None:
    source = Source(count=50)
    assert list(Prefetcher(source.generate(), depth=3)) == list(range(50))
    assert source.finished.is_set()
    assert source.thread is not None
    assert source.thread is not threading.current_thread()
    source.thread.join(TIMEOUT)
    assert not source.thread.is_alive()


def test_empty_source() -> None:
    source = Source(count=0)
    assert list(Prefetcher(source.generate())) == []
    assert source.finished.is_set()


def test_works_with_a_plain_iterator() -> None:
    assert list(Prefetcher(iter(["a", "b", "c"]), depth=1)) == ["a", "b", "c"]


@pytest.mark.parametrize("fail_after", [0, 1, 5])
def test_source_exception_is_raised_at_the_right_point(fail_after: int) -> None:
    source = Source(count=10, fail_after=fail_after)
    received: list[int] = []
    with pytest.raises(RuntimeError) as info:
        for item in Prefetcher(source.generate(), depth=2):
            received.append(item)
    assert info.value is source.error
    assert received == list(range(fail_after))
    assert source.finished.is_set()


def test_consumer_break_stops_the_producer() -> None:
    source = Source(count=None)  # endless
    received: list[int] = []
    for item in Prefetcher(source.generate(), depth=2):
        received.append(item)
        if item == 2:
            break
    assert received == [0, 1, 2]
    # leaving the loop closed the prefetcher, which joined its thread: the source's finally has run
    assert source.finished.is_set()
    assert source.thread is not None
    assert not source.thread.is_alive()
    produced = len(source.produced)
    assert produced <= 3 + 2 + 1
    time.sleep(0.05)
    assert len(source.produced) == produced


def test_consumer_exception_stops_the_producer() -> None:
    source = Source(count=None)
    prefetcher = Prefetcher(source.generate(), depth=1)
    with pytest.raises(KeyError):
        for _ in prefetcher:
            raise KeyError("writer failed")
    assert source.finished.is_set()
    assert source.thread is not None
    assert not source.thread.is_alive()


def test_explicit_close_stops_the_producer() -> None:
    source = Source(count=None)
    prefetcher = Prefetcher(source.generate(), depth=2)
    items = iter(prefetcher)
    assert next(items) == 0
    prefetcher.close()
    assert source.finished.is_set()
    assert source.thread is not None
    assert not source.thread.is_alive()
    prefetcher.close()  # safe twice


def test_close_before_iterating_is_safe() -> None:
    Prefetcher(iter([1, 2])).close()


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_at_most_depth_plus_one_items_ahead(depth: int) -> None:
    source = Source(count=None)
    prefetcher = Prefetcher(source.generate(), depth=depth)
    items = iter(prefetcher)
    try:
        for consumed in (1, 2):
            assert next(items) == consumed - 1
            # the producer fills the queue (depth) and holds one more item while it waits for room
            wait_until(lambda consumed=consumed: len(source.produced) >= consumed + depth + 1)
            time.sleep(0.05)
            assert len(source.produced) == consumed + depth + 1
    finally:
        prefetcher.close()
    assert source.finished.is_set()


def test_close_does_not_wait_long_for_a_producer_busy_elsewhere() -> None:
    def stuck() -> Iterator[int]:
        yield 0
        time.sleep(30)  # a request in flight: nothing the consumer can interrupt
        yield 1

    prefetcher = Prefetcher(stuck(), depth=1)
    items = iter(prefetcher)
    assert next(items) == 0
    started = time.monotonic()
    prefetcher.close(timeout=0.3)
    assert time.monotonic() - started < 1.0


def test_close_sets_the_stop_event_that_a_waiting_producer_waits_on() -> None:
    stop = threading.Event()
    woke: list[bool] = []

    def waiting() -> Iterator[int]:
        yield 0
        woke.append(stop.wait(30))
        yield 1

    prefetcher = Prefetcher(waiting(), depth=1, stop=stop)
    items = iter(prefetcher)
    assert next(items) == 0
    started = time.monotonic()
    prefetcher.close()
    assert time.monotonic() - started < 1.0
    assert woke == [True]


def test_a_check_that_raises_ends_the_wait_for_the_next_item() -> None:
    asked = threading.Event()

    def silent() -> Iterator[int]:
        yield 0
        time.sleep(30)
        yield 1

    def check() -> None:
        if asked.is_set():
            raise KeyboardInterrupt("stop")

    items = iter(Prefetcher(silent(), depth=1, check=check))
    assert next(items) == 0
    threading.Timer(0.2, asked.set).start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        next(items)
    assert time.monotonic() - started < 3.0


def test_ready_hands_over_items_without_waiting_and_the_iteration_goes_on_after_them() -> None:
    source = Source(count=5)
    prefetcher = Prefetcher(source.generate(), depth=2)
    assert prefetcher.ready() is None  # not started: nothing handed over, and no wait
    items = iter(prefetcher)
    assert next(items) == 0
    wait_until(lambda: len(source.produced) >= 4)  # 1 and 2 are in the queue once 3 is produced
    taken = [prefetcher.ready(), prefetcher.ready()]
    assert taken == [1, 2]
    assert list(items) == [3, 4]


def test_ready_leaves_the_end_and_the_producer_error_to_the_iteration() -> None:
    source = Source(count=1)
    prefetcher = Prefetcher(source.generate())
    items = iter(prefetcher)
    assert next(items) == 0
    wait_until(source.finished.is_set)
    assert prefetcher.ready() is None  # the end is met, not consumed
    assert list(items) == []

    failing = Source(fail_after=1)
    prefetcher = Prefetcher(failing.generate())
    items = iter(prefetcher)
    assert next(items) == 0
    wait_until(failing.finished.is_set)
    assert prefetcher.ready() is None  # the error is met, not raised here
    with pytest.raises(RuntimeError, match="source failed"):
        next(items)
