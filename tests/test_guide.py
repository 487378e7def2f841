"""The examples of the original "Adding a Sync" guide, run as written (host and auth aside) through the Python
and YAML paths, with ``dag.test()`` against the loopback server, which refuses any request without the guide's
body, header and query. The REST (curl) examples run on the live Airflow in ``test_rest_api.py``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.fixture_server import FixtureServer, Reply, Request
from tests.helpers import AirflowRunner, jobs, rows

pytestmark = pytest.mark.integration

GUIDE_BODY = {"mykey": "A great value"}
POKEMON = [{"name": f"pokemon-{number}", "url": f"https://pokeapi.co/api/v2/pokemon/{number}/"} for number in range(7)]


def guide_request_problem(request: Request) -> str | None:
    """Why ``request`` is not the guide's request (GET, ``Accept`` header, query and body), or None."""
    if request.method != "GET":
        return f"expected GET, got {request.method}"
    if request.headers.get("Accept") != "application/json":
        return f"expected Accept: application/json, got {request.headers.get('Accept')!r}"
    if request.query.get("query") != "A query":
        return f"expected ?query=A+query, got {request.query}"
    if request.body != GUIDE_BODY:
        return f"expected the body {GUIDE_BODY}, got {request.body!r}"
    return None


def guide_endpoint(api: FixtureServer) -> str:
    """Serves ``/my/endpoint`` like the PokeAPI (``results``, a ``next`` URL, three per page), but only to the
    guide's request: anything else gets a 400 that fails the sync."""

    def handler(request: Request) -> Reply:
        problem = guide_request_problem(request)
        if problem:
            return Reply(400, {"error": problem})
        offset = int(request.query.get("offset", 0))
        following = offset + 3
        next_url = f"{api.url}/my/endpoint?query=A+query&offset={following}" if following < len(POKEMON) else None
        return Reply(
            json={"count": len(POKEMON), "next": next_url, "previous": None, "results": POKEMON[offset:following]}
        )

    api.route("GET", "/my/endpoint", handler)
    return f"{api.url}/my/endpoint?query=A+query"


def hubspot_endpoint(api: FixtureServer) -> str:
    """Serves ``/crm/v3/objects/contacts`` like HubSpot (``paging.next.after``), only to the guide's request."""
    contacts = [{"id": str(number), "properties": {"email": f"c{number}@example.com"}} for number in range(1, 6)]

    def handler(request: Request) -> Reply:
        problem = guide_request_problem(request)
        if problem:
            return Reply(400, {"error": problem})
        start = int(request.query.get("after") or 0)
        document: dict[str, Any] = {"results": contacts[start : start + 2]}
        if start + 2 < len(contacts):
            after = str(start + 2)
            document["paging"] = {"next": {"after": after, "link": f"?after={after}"}}
        return Reply(json=document)

    api.route("GET", "/crm/v3/objects/contacts", handler)
    return f"{api.url}/crm/v3/objects/contacts?query=A+query"


def only_guide_requests(api: FixtureServer) -> None:
    assert api.requests and all(guide_request_problem(request) is None for request in api.requests)


# The Node snippet of each step as a DAG file: Nango.sync(url, options) is nango_sync(name, url, **options) in
# Python (the snippet's header line 'Accept: application/json' is written as a mapping).
NODE_SNIPPETS_DAG_FILE = """# An Airflow DAG file: the guide's Node snippets, step by step.
import os

from nango_provider.dag_factory import nango_sync

url = os.environ["GUIDE_URL"]  # https://api.example.com/my/endpoint?query=A+query, on the loopback server

step_1 = nango_sync(
    "guide_step_1",
    url,
    method="GET",  # The HTTP method
    headers={"Accept": "application/json"},  # HTTP headers to send along with every request
    body={"mykey": "A great value"},  # Optional, will be JSON encoded
)
step_2 = nango_sync(
    "guide_step_2",
    url,
    method="GET",
    headers={"Accept": "application/json"},
    body={"mykey": "A great value"},
    response_path="results",  # The path in the response object to the array with our results
)
step_3 = nango_sync(
    "guide_step_3",
    url,
    method="GET",
    headers={"Accept": "application/json"},
    body={"mykey": "A great value"},
    response_path="results",
    unique_key="name",  # The key in the results object which identifies a unique record
)
"""


@pytest.fixture
def node_snippets(airflow: AirflowRunner, api: FixtureServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The Node snippets' DAG file in the DAG folder, for this test only."""
    monkeypatch.setenv("GUIDE_URL", guide_endpoint(api))
    dag_file = airflow.dags / "guide_node_snippets.py"
    dag_file.write_text(NODE_SNIPPETS_DAG_FILE, encoding="utf-8")
    yield
    dag_file.unlink()


@pytest.mark.parametrize("step", ["step_1", "step_2", "step_3"])
def test_the_node_snippet_of_each_step_runs_with_its_get_body(
    airflow: AirflowRunner, db: str, api: FixtureServer, node_snippets: None, step: str
) -> None:
    dag_run = airflow.run(f"nango_sync_guide_{step}")

    assert dag_run.state == "success", jobs(db)
    # Without pagination the first page is the whole sync: three Pokémon.
    assert sorted(row["data"]["name"] for row in rows(db, f"nango.guide_{step}").values()) == [
        "pokemon-0",
        "pokemon-1",
        "pokemon-2",
    ]
    assert len(api.requests) == 1
    only_guide_requests(api)


def test_cursor_pagination_from_the_guide_sends_the_body_on_every_page(
    airflow: AirflowRunner, db: str, api: FixtureServer
) -> None:
    url = hubspot_endpoint(api)
    airflow.write_syncs(
        f"""
syncs:
  guide_hubspot:
    url: {url}
    method: GET
    headers: {{Accept: application/json}}
    body: {{mykey: A great value}}
    response_path: results
    unique_key: id
    paging_request_path: after
    paging_response_path: paging.next.after
"""
    )

    dag_run = airflow.run("nango_sync_guide_hubspot")

    assert dag_run.state == "success", jobs(db)
    assert sorted(rows(db, "nango.guide_hubspot")) == ["1", "2", "3", "4", "5"]
    assert [request.query.get("after") for request in api.requests] == [None, "2", "4"]
    only_guide_requests(api)


def test_next_url_pagination_from_the_guide_sends_the_body_on_every_page(
    airflow: AirflowRunner, db: str, api: FixtureServer
) -> None:
    url = guide_endpoint(api)
    airflow.write_syncs(
        f"""
syncs:
  guide_pokemon:
    url: {url}
    method: GET
    headers: {{Accept: application/json}}
    body: {{mykey: A great value}}
    response_path: results
    unique_key: name
    paging_response_path: next
"""
    )

    dag_run = airflow.run("nango_sync_guide_pokemon")

    assert dag_run.state == "success", jobs(db)
    assert sorted(rows(db, "nango.guide_pokemon")) == sorted(pokemon["name"] for pokemon in POKEMON)
    assert [request.query.get("offset") for request in api.requests] == [None, "3", "6"]
    only_guide_requests(api)
