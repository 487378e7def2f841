"""nango-provider: sync paginated HTTP APIs into Postgres on Apache Airflow."""

from __future__ import annotations

__version__ = "0.1.0"
