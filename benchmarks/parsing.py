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


_OURS_DAG_FILE = '''"""All syncs of one folder, one DAG each (the README's DAG file)."""
from nango_provider.dag_factory import load_sync_dags

load_sync_dags({folder!r}, namespace=globals())
'''
_DAGFACTORY_DAG_FILE = '''"""dag-factory 1.1.0 building every DAG of one folder."""
import dagfactory

dagfactory.load_yaml_dags(globals_dict=globals(), dags_folder={folder!r}, defaults_config_path={folder!r})
'''
_HAND_WRITTEN_DAG_FILE = '''"""One sync's DAG by hand: the factory's DAG and NangoSyncOperator task."""
from datetime import datetime, timedelta, timezone

from airflow.sdk import DAG

from nango_provider.operators.sync import NangoSyncOperator

with DAG(
    dag_id="nango_sync_{name}",
    schedule="@hourly",
    start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    tags=["nango", "sync"],
    default_args={{"owner": "nango", "retries": 3, "retry_delay": timedelta(seconds=30),
                  "retry_exponential_backoff": True}},
) as dag:
    NangoSyncOperator(task_id="sync", sync_name="{name}", **{fields!r})
'''


def write_dag_files(folder: Path, ours: Path, ours_large: Path, dagfactory: Path, one_index: int) -> dict[str, Path]:
    """The DAG files Airflow would parse: ours over ``ours`` and ``ours_large``, dag-factory's, a hand-written one."""
    folder.mkdir(parents=True, exist_ok=True)
    texts = {
        "ours": _OURS_DAG_FILE.format(folder=str(ours)),
        "ours_large": _OURS_DAG_FILE.format(folder=str(ours_large)),
        "dagfactory": _DAGFACTORY_DAG_FILE.format(folder=str(dagfactory)),
        "hand_written": _HAND_WRITTEN_DAG_FILE.format(name=sync_name(one_index), fields=_fields(one_index)),
    }
    paths = {}
    for kind, text in texts.items():
        paths[kind] = folder / f"dag_file_{kind}.py"
        paths[kind].write_text(text)
    return paths
