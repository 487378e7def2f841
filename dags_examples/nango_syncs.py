"""Airflow DAG file: one scheduled DAG per sync defined in the YAML files under $NANGO_SYNCS_PATH.

Drop this file into your DAGs folder and point NANGO_SYNCS_PATH at a folder of ``*.yaml`` sync files
(default: the ``syncs`` folder next to this file).
"""

from __future__ import annotations

import os
from pathlib import Path

from nango_provider.dag_factory import load_sync_dags

load_sync_dags(os.environ.get("NANGO_SYNCS_PATH") or Path(__file__).parent / "syncs", namespace=globals())
