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
        "config": {
            "nango": {
                "description": "Where syncs may send requests (docs/security.md).",
                "options": {
                    "allowed_hosts": {
                        "description": (
                            "Hosts syncs may send requests to, separated by commas: a name (api.example.com), every "
                            "subdomain (*.example.com) or a name and port (api.internal:8443). Empty: any host but "
                            "cloud metadata addresses (169.254.169.254, ...) and Airflow's own API server, which "
                            "only this list can admit. Checked before every request, and when a sync is created "
                            "through the REST API."
                        ),
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "api.hubapi.com, *.example.com",
                        "default": "",
                    }
                },
            }
        },
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
