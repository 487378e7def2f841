"""One run of a sync, without Airflow: lock the table, resume or start, write every page, finish or record why not.

Data flows one way: the hook yields pages, the store writes them. Fetching happens in a background thread, at
most a few pages ahead of the writes; records are turned into COPY rows one page ahead (:class:`PreparedPages`).
A run ends its job row as ``success``, ``failed`` or ``cancelled`` (:class:`Cancellation`); only a killed process
leaves it ``running``, and the next run of the table closes it as ``abandoned``.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from nango_provider.budget import RateBudget
from nango_provider.definition import SyncDefinition
from nango_provider.exceptions import SyncCancelled
from nango_provider.incremental import page_high, value_to_send
from nango_provider.pagination import request_from_checkpoint
from nango_provider.paths import compile_path
from nango_provider.redaction import redact_text, secret_values
from nango_provider.streaming import Prefetcher

if TYPE_CHECKING:
    from nango_provider.hooks.nango import NangoHook, Page
    from nango_provider.store.postgres import PostgresStore, RunIdentity, RunState
    from nango_provider.store.records import PreparedPage


class Cancellation:
    """A request to stop a run, made from another thread or a signal handler; the run then ends as ``cancelled``
    and raises :class:`SyncCancelled`.

    The run notices it while it waits for the next page or for the table's lock, and a statement it is waiting
    for in Postgres is cancelled at once, so it stops within about a second.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""
        self._interrupt: Callable[[], None] | None = None

    @property
    def requested(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._event.is_set()

    def cancel(self, reason: str) -> None:
        """Ask the run to stop; ``reason`` goes to its job row. Returns at once."""
        self.reason = self.reason or reason
        self._event.set()
        interrupt = self._interrupt
        if interrupt is not None:
            interrupt()

    def check(self) -> None:
        """Raise :class:`SyncCancelled` if the run was asked to stop."""
        if self._event.is_set():
            raise SyncCancelled(self.reason)

    def interrupt_with(self, interrupt: Callable[[], None] | None) -> None:
        """What :meth:`cancel` calls to cut a blocking wait short (the store cancels its statement)."""
        self._interrupt = interrupt


@dataclass(frozen=True)
class RunOutcome:
    """What a successful run did: its counts and its time window.

    Every row the run added or updated has ``_nango_updated_at`` between ``started_at`` and ``ended_at`` (both
    included), every row it marked deleted has ``_nango_deleted_at`` equal to ``ended_at``; a resumed run's window
    starts at its first try (see :func:`nango_provider.changes.changed_rows`).
    """

    counts: dict[str, int]
    started_at: datetime
    ended_at: datetime
    job_id: int

    def event_extra(self, sync: str, table: str, deletes: str) -> dict[str, Any]:
        """The run as JSON for the extra of the Asset event a downstream DAG is triggered by."""
        return {
            "sync": sync,
            "table": table,
            "job_id": self.job_id,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat(),
            "deletes": deletes,
            "counts": dict(self.counts),
        }


def run_sync(
    hook: NangoHook,
    store: PostgresStore,
    definition: SyncDefinition,
    run: RunIdentity,
    *,
    full_refresh: bool = False,
    log: Callable[[str], None] = print,
    cancellation: Cancellation | None = None,
) -> dict[str, int]:
    """One run of a sync (see :func:`execute_sync`); its counts."""
    outcome = execute_sync(hook, store, definition, run, full_refresh=full_refresh, log=log, cancellation=cancellation)
    return outcome.counts


def execute_sync(
    hook: NangoHook,
    store: PostgresStore,
    definition: SyncDefinition,
    run: RunIdentity,
    *,
    full_refresh: bool = False,
    log: Callable[[str], None] = print,
    cancellation: Cancellation | None = None,
) -> RunOutcome:
    """One run of a sync: claim and lock the table, resume or start, write every page, finish; record a failure
    (or a cancellation: :class:`SyncCancelled` is raised then)."""
    cancellation = cancellation or Cancellation()
    state: RunState | None = None
    secrets = secret_values(definition.headers, definition.query_params, definition.body)
    with store.connected():
        cancellation.interrupt_with(store.interrupt)
        try:
            cancellation.check()
            secrets = hook.secrets(definition)  # adds the connection's password
            store.create_tables()
            store.claim_table(run)
            store.lock_table(log, cancellation.check)
            state = store.start(run, full_refresh=full_refresh, log=log)
            warnings: list[str] = []
            complete = _write_pages(
                hook, store, definition, run, state=state, log=log, check=cancellation.check, warnings=warnings
            )
            cancellation.check()
            counts, ended_at = store.finish(run, state, complete=complete, warnings=warnings)
        except BaseException as error:
            cancellation.interrupt_with(None)
            _record_stop(store, state, run, error, cancellation=cancellation, secrets=secrets)
            if cancellation.requested and not isinstance(error, SyncCancelled):
                raise SyncCancelled(cancellation.reason) from error  # the error is how the cancellation showed
            raise
        finally:
            cancellation.interrupt_with(None)
    log(
        f"sync {definition.name!r} into {store.table_text}: "
        + ", ".join(f"{name} {value}" for name, value in counts.items())
    )
    return RunOutcome(counts, state.run_started_at, ended_at, state.job_id)


def _write_pages(
    hook: NangoHook,
    store: PostgresStore,
    definition: SyncDefinition,
    run: RunIdentity,
    *,
    state: RunState,
    log: Callable[[str], None],
    check: Callable[[], None],
    warnings: list[str],
) -> bool:
    """Write pages from the checkpoint on; whether the run reached the last page (not cut by max_total).

    Pages' warnings (data that may be incomplete without an error) are logged and added to ``warnings``.
    """
    since = _since(definition, state, log)
    start = None
    if state.resumed:
        log(f"resuming sync {definition.name!r} at page {state.next_page} ({state.counts['fetched']} fetched)")
        if state.checkpoint is None:  # every page was written before the last try failed
            return not (definition.max_total and state.counts["fetched"] >= definition.max_total)
        start = request_from_checkpoint(definition, state.checkpoint, since)
    stop = threading.Event()  # set when writing stops, so that a fetch waiting to retry stops too
    rate = definition.max_requests_per_second
    ledger = store.slot_ledger() if rate else None
    try:
        budget = None
        if ledger is not None and rate:
            budget = RateBudget(ledger, hook.budget_key(definition), rate)
            log(f"rate budget: at most {rate:g} requests a second, shared by every run with the same API credential")
        pages = hook.pages(
            definition,
            start=start,
            start_page=state.next_page,
            fetched=state.counts["fetched"],
            stop=stop,
            since=since,
            budget=budget,
        )
        return _write_fetched(store, definition, run, pages, stop, state=state, log=log, check=check, warnings=warnings)
    finally:
        if ledger is not None:
            ledger.close()


def _write_fetched(
    store: PostgresStore,
    definition: SyncDefinition,
    run: RunIdentity,
    pages: Iterator[Page],
    stop: threading.Event,
    *,
    state: RunState,
    log: Callable[[str], None],
    check: Callable[[], None],
    warnings: list[str],
) -> bool:
    """Write the fetched pages; whether the last one ended the run (not cut by max_total). ``stop`` is set when
    writing stops."""
    complete = True
    fetched = Prefetcher(pages, stop=stop, check=check)
    prepared_pages = PreparedPages(
        store, definition, fetched, state.counts["fetched"], in_thread=not store.copies_new_rows(state), check=check
    )
    try:
        for page, prepared, high in prepared_pages:
            checkpoint = page.next_request.to_checkpoint() if page.next_request else None
            counts = store.write_page(
                run, state, prepared, page.number, checkpoint, high_mark=high, meanwhile=prepared_pages.prepare_fetched
            )
            complete = not page.cut
            if page.warning:
                log(f"WARNING: sync {definition.name!r}: {page.warning}")
                warnings.append(page.warning)
            log(
                f"page {page.number}: {counts['fetched']} records, {counts['added']} added, "
                f"{counts['updated']} updated, {counts['unchanged']} unchanged"
            )
    finally:
        prepared_pages.close()
    return complete


class PreparedPages:
    """The fetched pages with their COPY rows and their highest incremental value (records dropped).

    While a run writes new rows by COPY (an initial sync), pages are turned into rows in the writing thread, at
    most one page ahead: the store calls :meth:`prepare_fetched` once it has sent a page's rows, and the next page,
    if it is fetched already, is turned into rows while Postgres stores them. This CPU work then overlaps the
    server's instead of competing with the writes for the interpreter, and the writing thread waits less for the
    interpreter after each round trip. A page not fetched by then comes with a function that prepares it, which the
    store calls once the page's transaction has begun (see :meth:`PostgresStore.write_page`). Otherwise
    (``in_thread``: a re-sync, whose writes are short lookups) a thread of its own turns the pages into rows as soon
    as they are fetched.
    """

    def __init__(
        self,
        store: PostgresStore,
        definition: SyncDefinition,
        fetched: Prefetcher[Page],
        count: int,
        *,
        in_thread: bool,
        check: Callable[[], None],
    ) -> None:
        self._store = store
        self._name = definition.name
        self._marked = compile_path(definition.incremental.record_field) if definition.incremental else None
        self._fetched = fetched
        self._count = count
        self._ahead: tuple[Page, PreparedPage, Any] | Exception | None = None
        self._in_thread = in_thread
        self._preparing: Prefetcher[tuple[Page, PreparedPage, Any]] | None = None
        self._pages: Iterator[Page] = iter(fetched)
        self._prepared: Iterator[tuple[Page, PreparedPage, Any]] | None = None
        if in_thread:
            self._preparing = Prefetcher(map(self._prepare, self._pages), check=check)
            self._prepared = iter(self._preparing)

    def __iter__(self) -> Iterator[tuple[Page, PreparedPage | Callable[[], PreparedPage], Any]]:
        return self

    def __next__(self) -> tuple[Page, PreparedPage | Callable[[], PreparedPage], Any]:
        if self._prepared is not None:
            return next(self._prepared)
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            page = next(self._pages)  # its records stay with it: the function that prepares it needs them
            return page, lambda: self._rows(page), self._high(page)
        if isinstance(ahead, Exception):
            raise ahead
        return ahead

    def prepare_fetched(self) -> None:
        """Turn the next page into rows if it is fetched already and not prepared yet; never waits, never raises
        (an error, such as a record without its unique key, is raised when that page's turn comes)."""
        if self._prepared is not None or self._ahead is not None:
            return
        page = self._fetched.ready()
        if page is None:
            return
        try:
            self._ahead = self._prepare(page)
        except Exception as error:
            self._ahead = error

    def close(self) -> None:
        """Stop preparing and fetching (the threads end, a fetch waiting to retry stops)."""
        if self._preparing is not None:
            self._preparing.close()
        self._fetched.close()

    def _prepare(self, page: Page) -> tuple[Page, PreparedPage, Any]:
        high = self._high(page)
        prepared = self._rows(page)
        if not self._in_thread:
            prepared.copy_text  # noqa: B018  # a COPY writes every row: its text is built now, while the server works
        return dataclasses.replace(page, records=[]), prepared, high

    def _rows(self, page: Page) -> PreparedPage:
        prepared = self._store.prepare_page(page.records, page.number, self._count)
        self._count += prepared.fetched
        return prepared

    def _high(self, page: Page) -> Any:
        return page_high(page.records, self._marked, self._name, page.number) if self._marked else None


def _record_stop(
    store: PostgresStore,
    state: RunState | None,
    run: RunIdentity,
    error: BaseException,
    *,
    cancellation: Cancellation,
    secrets: list[str],
) -> None:
    """End the job row as ``cancelled`` or ``failed``, after letting go of a connection stuck in a statement."""
    store.release_if_busy()
    cancelled = cancellation.requested or isinstance(error, SyncCancelled)
    message = f"cancelled: {cancellation.reason or error}" if cancelled else f"{type(error).__name__}: {error}"
    store.record_stop(state, run, redact_text(message, secrets), cancelled=cancelled)


def _since(definition: SyncDefinition, state: RunState, log: Callable[[str], None]) -> Any:
    """The value the run's first request asks from (incremental syncs): the mark less the lookback, or the
    initial value on a full run."""
    if definition.incremental is None:
        return None
    since = value_to_send(definition.incremental, state.since if state.incremental else None, definition.name)
    if state.incremental:
        log(
            f"incremental run of {definition.name!r}: {definition.incremental.request_name}={since!r} "
            f"(highest {definition.incremental.record_field} of the last complete run: {state.since!r}); "
            "nothing is marked deleted"
        )
    return since
