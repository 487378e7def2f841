"""Provider metadata read by Airflow's provider manager (entry point ``apache_airflow_provider``)."""

from __future__ import annotations

from typing import Any

from nango_provider import __version__


def get_provider_info() -> dict[str, Any]:
    """Describe the provider: its package, hook, operator and the ``nango`` connection type."""
    return {
        "package-name": "nango-provider",
        "name": "Nango Sync",
        "description": "Sync paginated HTTP APIs into Postgres: one scheduled DAG per sync definition.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Nango Sync",
                "external-doc-url": "https://github.com/NangoHQ/nango",
                "tags": ["software"],
            }
        ],
        "hooks": [{"integration-name": "Nango Sync", "python-modules": ["nango_provider.hooks.nango"]}],
        "operators": [{"integration-name": "Nango Sync", "python-modules": ["nango_provider.operators.sync"]}],
        "connection-types": [
            {
                "connection-type": "nango",
                "hook-class-name": "nango_provider.hooks.nango.NangoHook",
                "hook-name": "Nango sync (HTTP API)",
                "ui-field-behaviour": {
                    "hidden-fields": [],
                    "relabeling": {"host": "Base URL", "login": "Username", "password": "Password or token"},
                    "placeholders": {
                        "host": "https://api.example.com",
                        "extra": '{"Accept": "application/json"}',
                    },
                },
            }
        ],
    }
