"""Definition folders for the DAG-parsing benchmark: 1,000 one-sync files, for nango-provider and dag-factory.

Both folders describe the same DAGs: id ``nango_sync_sync_NNNN``, hourly, no catchup, one active run, tags
``nango`` and ``sync``, 3 retries with exponential back-off, and one ``NangoSyncOperator`` task ``sync``
with the same fields. nango-provider's factory adds, on top, a DAG doc, typed ``Param``s and an Asset outlet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from benchmarks.measure import contacts_fields

API_URL = "http://127.0.0.1:8700"  # never contacted: parsing does no I/O


def sync_name(index: int) -> str:
    """``sync_0500`` for 500: the sync of file ``index``."""
    return f"sync_{index:04d}"


def _fields(index: int) -> dict[str, Any]:
    return contacts_fields(API_URL, f"bench.{sync_name(index)}")


def write_ours(folder: Path, count: int) -> None:
    """``count`` files ``sync_NNNN.yaml``, each ``syncs: {sync_NNNN: {...}}`` as the README documents."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        document = {"syncs": {sync_name(index): _fields(index) | {"frequency": "1h"}}}
        (folder / f"{sync_name(index)}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))


def write_dagfactory(folder: Path, count: int) -> None:
    """``count`` dag-factory 1.1.0 files, each one DAG with one ``NangoSyncOperator`` task."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        name = sync_name(index)
        dag = {
            "default_args": {
                "owner": "nango",
                "start_date": "2024-01-01",
                "retries": 3,
                "retry_delay_sec": 30,
                "retry_exponential_backoff": True,
            },
            "schedule": "@hourly",
            "catchup": False,
            "max_active_runs": 1,
            "tags": ["nango", "sync"],
            "description": f"Sync GET {API_URL}/crm/v3/objects/contacts into bench.{name}",
            "params": {"full_refresh": False, "max_total": None},
            "tasks": {
                "sync": {
                    "operator": "nango_provider.operators.sync.NangoSyncOperator",
                    "sync_name": name,
                    **_fields(index),
                }
            },
        }
        (folder / f"{name}.yaml").write_text(yaml.safe_dump({f"nango_sync_{name}": dag}, sort_keys=False))
