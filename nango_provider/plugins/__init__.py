"""The ``nango`` Airflow plugin: the REST API of the original product and the "Nango syncs" page.

Registered through the ``airflow.plugins`` entry point. The FastAPI app is mounted by the API server under
``/nango`` (routes in :mod:`nango_provider.plugins.api`); the UI nav gets a "Nango syncs" item that shows the page
``/nango/ui`` inside Airflow. Every Airflow process loads plugins, but only the API server reads
``fastapi_apps``: the app (and Airflow's API modules it needs) is imported on first access only.
"""

from __future__ import annotations

from typing import Any, Final

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX: Final = "/nango"
PAGE_PATH: Final = f"{URL_PREFIX}/ui"


class _LazyFastApiApps:
    """``fastapi_apps`` built on first read, so schedulers and workers never import the API modules."""

    def __get__(self, instance: object, owner: type | None = None) -> list[dict[str, Any]]:
        from nango_provider.plugins.api import app

        return [{"app": app, "url_prefix": URL_PREFIX, "name": "Nango syncs"}]


class NangoPlugin(AirflowPlugin):
    """Mounts the Nango REST API on the API server and adds the "Nango syncs" page to the UI nav."""

    name = "nango"
    fastapi_apps = _LazyFastApiApps()
    external_views = [
        {
            "name": "Nango syncs",
            "href": PAGE_PATH,
            "url_route": "nango_syncs",
            "destination": "nav",
            "nav_top_level": True,
            "icon": f"{URL_PREFIX}/icon.svg",
            "icon_dark_mode": f"{URL_PREFIX}/icon-dark.svg",
        }
    ]
