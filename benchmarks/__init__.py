"""``make bench``: throughput, memory and DAG-parsing benchmarks of nango-provider (``python -m benchmarks.bench``)."""

from __future__ import annotations
