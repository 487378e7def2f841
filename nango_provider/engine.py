"""One run of a sync, without Airflow: lock the table, resume or start, write every page, finish or record why not.

Data flows one way: the hook yields pages, the store writes them. Fetching (and turning records into COPY rows)
happens in a background thread, at most a few pages ahead of the writes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from nango_provider.definition import SyncDefinition
from nango_provider.pagination import request_from_checkpoint
from nango_provider.redaction import redact_text, secret_values
from nango_provider.streaming import Prefetcher

if TYPE_CHECKING:
    from nango_provider.hooks.nango import NangoHook, Page
    from nango_provider.store.postgres import PostgresStore, RunIdentity, RunState
    from nango_provider.store.records import PreparedPage


def run_sync(
    hook: NangoHook,
    store: PostgresStore,
    definition: SyncDefinition,
    run: RunIdentity,
    *,
    full_refresh: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, int]:
    """One run of a sync: lock the table, resume or start, write every page, finish; record a failure."""
    state: RunState | None = None
    secrets = secret_values(definition.headers, definition.query_params, definition.body)
    with store.connected():
        try:
            secrets = hook.secrets(definition)  # adds the connection's password
            store.create_tables()
            store.lock_table(log)
            state = store.start(run, full_refresh=full_refresh)
            complete = _write_pages(hook, store, definition, run, state=state, log=log)
            counts = store.finish(run, state, complete=complete)
        except BaseException as error:
            store.record_failure(state, run, redact_text(f"{type(error).__name__}: {error}", secrets))
            raise
    log(
        f"sync {definition.name!r} into {store.table_text}: "
        + ", ".join(f"{name} {value}" for name, value in counts.items())
    )
    return counts


def _write_pages(
    hook: NangoHook,
    store: PostgresStore,
    definition: SyncDefinition,
    run: RunIdentity,
    *,
    state: RunState,
    log: Callable[[str], None],
) -> bool:
    """Write pages from the checkpoint on; whether the run reached the last page (not cut by max_total)."""
    start = None
    if state.resumed:
        log(f"resuming sync {definition.name!r} at page {state.next_page} ({state.counts['fetched']} fetched)")
        if state.checkpoint is None:  # every page was written before the last try failed
            return not (definition.max_total and state.counts["fetched"] >= definition.max_total)
        start = request_from_checkpoint(definition, state.checkpoint)
    pages = hook.pages(definition, start=start, start_page=state.next_page, fetched=state.counts["fetched"])
    complete = True
    for page, prepared in Prefetcher(_prepared(store, pages, state.counts["fetched"])):
        checkpoint = page.next_request.to_checkpoint() if page.next_request else None
        counts = store.write_page(run, state, prepared, page.number, checkpoint)
        complete = not page.cut
        log(
            f"page {page.number}: {counts['fetched']} records, {counts['added']} added, "
            f"{counts['updated']} updated, {counts['unchanged']} unchanged"
        )
    return complete


def _prepared(store: PostgresStore, pages: Iterator[Page], fetched: int) -> Iterator[tuple[Page, PreparedPage]]:
    """Runs in the fetch thread: each page with its COPY rows, records dropped, so CPU work overlaps writes."""
    for page in pages:
        prepared = store.prepare_page(page.records, page.number, fetched)
        fetched += prepared.fetched
        yield dataclasses.replace(page, records=[]), prepared
