"""Airflow DAG file that holds no DAG: it reports the sync definitions that nango_syncs.py cannot load.

Airflow hides every DAG of a file that fails to import, so nango_syncs.py never fails because of a definition:
it loads every valid sync. This file reads the same definitions and fails while one is invalid (or the registry
of API-created syncs does not answer), so Airflow shows the problems as this file's import error, naming the
file, the sync and the field. Keep it next to nango_syncs.py, under this name, reading the same folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from nango_provider.dag_factory import report_definition_errors

report_definition_errors(os.environ.get("NANGO_SYNCS_PATH") or Path(__file__).parent / "syncs")
