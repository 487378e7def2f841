"""The Airflow internals the plugin relies on, checked so that a new Airflow release that changes one of them
fails here, loudly and by name, rather than in a user's API server.

Three layers: no module but :mod:`nango_provider.plugins.airflow_internals` imports Airflow beyond
``airflow.sdk``, the providers' hooks and the plugin base class; every internal the adapter calls still
exists with the parameters and attributes it uses; and each adapter function does what it says against the
metadata database of a live Airflow, as seen through Airflow's own REST API and DAG processor.
"""

from __future__ import annotations

import ast
import enum
import importlib
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from devtools.airflow_server import AirflowServer, wait_for
from tests.live_airflow import live_airflow

__all__ = ["live_airflow"]  # the fixture, imported for pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nango_provider"
ADAPTER = PACKAGE / "plugins" / "airflow_internals.py"
PUBLIC_AIRFLOW = ("airflow.sdk", "airflow.providers.", "airflow.plugins_manager")
"""What any module may import: the Task SDK, the providers' public classes, and the plugin base class."""

# -- only the adapter touches Airflow's internals -----------------------------------------------------------


def _airflow_imports(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        yield from (name for name in names if name == "airflow" or name.startswith("airflow."))


def test_only_the_adapter_imports_airflow_internals() -> None:
    offending = {
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in PACKAGE.rglob("*.py")
        if path != ADAPTER
        for name in _airflow_imports(path)
        if not name.startswith(PUBLIC_AIRFLOW)
    }
    assert not offending, "Airflow internals outside plugins/airflow_internals.py:\n" + "\n".join(sorted(offending))
    assert any(not name.startswith(PUBLIC_AIRFLOW) for name in _airflow_imports(ADAPTER))


# -- every internal still has the shape the adapter uses ----------------------------------------------------

CALLED_WITH: dict[str, set[str]] = {
    "airflow.api.common.trigger_dag:trigger_dag": {
        "dag_id",
        "triggered_by",
        "triggering_user_name",
        "conf",
        "replace_microseconds",
        "session",
    },
    "airflow.api_fastapi.core_api.services.public.dag_run:patch_dag_run_state": {"dag", "dag_run", "state", "session"},
    "airflow.api_fastapi.common.dagbag:DBDagBag.get_dag_for_run": {"dag_run", "session"},
    "airflow.api_fastapi.common.dagbag:DBDagBag.get_latest_version_of_dag": {"dag_id", "session"},
    "airflow.models.dag:DagModel.get_team_name": {"dag_id"},
    "airflow.models.connection:Connection.get_team_name": {"connection_id"},
    "airflow.models.connection:Connection.get_connection_from_secrets": {"conn_id"},
    "airflow.utils.session:create_session": {"scoped"},
    "airflow.api_fastapi.auth.managers.base_auth_manager:BaseAuthManager.is_authorized_connection": {
        "method",
        "details",
        "user",
    },
    "airflow.api_fastapi.auth.managers.models.resource_details:ConnectionDetails": {"conn_id", "team_name"},
    "airflow.api_fastapi.auth.managers.base_auth_manager:BaseAuthManager.is_authorized_dag": {
        "method",
        "access_entity",
        "details",
        "user",
    },
    "airflow.api_fastapi.auth.managers.base_auth_manager:BaseAuthManager.get_authorized_dag_ids": {
        "user",
        "method",
        "session",
    },
    "airflow.api_fastapi.auth.managers.models.resource_details:DagDetails": {"id", "team_name"},
    "airflow.models.dagbag:DagPriorityParsingRequest": {"bundle_name", "relative_fileloc"},
    "airflow.models.log:Log": {"event", "owner", "extra"},
}
ATTRIBUTES: dict[str, set[str]] = {
    "airflow.models.dag:DagModel": {
        "dag_id",
        "is_stale",
        "is_paused",
        "timetable_summary",
        "fileloc",
        "bundle_name",
        "relative_fileloc",
        "has_import_errors",
        "next_dagrun_create_after",
        "tags",
    },
    "airflow.models.dagrun:DagRun": {
        "id",
        "dag_id",
        "run_id",
        "state",
        "run_type",
        "run_after",
        "start_date",
        "end_date",
    },
    "airflow.models.taskinstance:TaskInstance": {"dag_id", "run_id", "state"},
    "airflow.models.dagbag:DagPriorityParsingRequest": {"id", "bundle_name", "relative_fileloc"},
    "airflow.models.errors:ParseImportError": {"bundle_name", "filename", "stacktrace"},
    "airflow.api_fastapi.auth.managers.base_auth_manager:BaseAuthManager": {"get_url_login"},
}
MEMBERS: dict[str, set[str]] = {
    "airflow.utils.state:DagRunState": {"QUEUED", "RUNNING"},
    "airflow.utils.state:TaskInstanceState": {"UP_FOR_RETRY"},
    "airflow.utils.types:DagRunTriggeredByType": {"REST_API"},
    "airflow.api_fastapi.core_api.datamodels.dag_run:DagRunMutableStates": {"FAILED"},
    "airflow.api_fastapi.auth.managers.models.resource_details:DagAccessEntity": {"RUN"},
}
PLAIN_IMPORTS = (
    "airflow.api_fastapi.app:get_auth_manager",
    "airflow.api_fastapi.auth.managers.models.base_user:BaseUser",
    "airflow.api_fastapi.common.db.common:SessionDep",
    "airflow.api_fastapi.core_api.security:get_user",
    "airflow.exceptions:DagNotFound",
)


def resolve(target: str) -> Any:
    """``module:attr.attr`` -> the object; fails naming what moved."""
    module_name, _, path = target.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
    except ImportError as error:
        pytest.fail(f"Airflow moved or removed {module_name}: {error}")
    for part in path.split("."):
        if not hasattr(found, part):
            pytest.fail(f"Airflow removed {target} (no {part!r})")
        found = getattr(found, part)
    return found


@pytest.mark.parametrize("target", sorted(CALLED_WITH))
def test_each_internal_takes_the_arguments_the_adapter_passes(target: str) -> None:
    parameters = inspect.signature(resolve(target)).parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    missing = set() if accepts_any else CALLED_WITH[target] - set(parameters)
    assert not missing, f"{target} no longer takes {sorted(missing)}: update plugins/airflow_internals.py"
    if accepts_any:  # keyword-only models (Log, DagPriorityParsingRequest) map keywords onto their columns
        columns = set(resolve(target).__table__.columns.keys())
        assert CALLED_WITH[target] <= columns | set(parameters), target


@pytest.mark.parametrize("target", sorted(ATTRIBUTES))
def test_each_model_has_the_attributes_the_adapter_reads(target: str) -> None:
    missing = {name for name in ATTRIBUTES[target] if not hasattr(resolve(target), name)}
    assert not missing, f"{target} lost {sorted(missing)}: update plugins/airflow_internals.py"


@pytest.mark.parametrize("target", sorted(MEMBERS))
def test_each_enum_has_the_members_the_adapter_uses(target: str) -> None:
    members = resolve(target)
    assert issubclass(members, enum.Enum)
    assert MEMBERS[target] <= set(members.__members__), target


@pytest.mark.parametrize("target", PLAIN_IMPORTS)
def test_each_plain_import_still_resolves(target: str) -> None:
    assert resolve(target) is not None


def test_the_adapter_imports() -> None:
    from nango_provider.plugins import airflow_internals

    assert set(airflow_internals.__all__) <= set(dir(airflow_internals))


# -- behaviour against a live Airflow -----------------------------------------------------------------------

DAG_ID = "nango_sync_nested_objects"  # a YAML sync no other live test runs; paused at creation


@pytest.fixture(scope="module")
def metadata(live_airflow: AirflowServer) -> Iterator[Session]:
    """A session on the live Airflow's metadata database, the one its API server and scheduler use."""
    engine = create_engine(live_airflow.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    live_airflow.wait_for_dag(DAG_ID)
    with Session(engine) as session:
        yield session
    engine.dispose()


def airflow_view(server: AirflowServer, path: str, **params: Any) -> dict[str, Any]:
    response = server.client().get(f"{server.url}/api/v2/{path}", params=params, timeout=30)
    response.raise_for_status()
    return dict(response.json())


@pytest.mark.integration
def test_dag_infos_reads_the_parsed_sync_dags(live_airflow: AirflowServer, metadata: Session) -> None:
    from nango_provider.plugins import airflow_internals as adapter

    infos = adapter.dag_infos(metadata, "nango_sync_")
    assert {"nango_sync_pokemon", DAG_ID} <= set(infos)
    info = adapter.dag_infos(metadata, "nango_sync_", [DAG_ID])[DAG_ID]
    shown = airflow_view(live_airflow, f"dags/{DAG_ID}")
    assert info.is_paused is shown["is_paused"] and info.relative_fileloc == "nango_syncs.py"
    assert info.tags == ("nango", "sync") and info.schedule == shown["timetable_summary"]
    assert adapter.dag_param_names(metadata, DAG_ID) == ["full_refresh", "max_total"]
    with pytest.raises(adapter.DagNotParsedError):
        adapter.dag_param_names(metadata, "nango_sync_nowhere")


@pytest.mark.integration
def test_set_paused_is_what_airflow_shows(live_airflow: AirflowServer, metadata: Session) -> None:
    from nango_provider.plugins import airflow_internals as adapter

    for paused in (False, True):
        adapter.set_paused(metadata, DAG_ID, paused)
        metadata.commit()
        assert airflow_view(live_airflow, f"dags/{DAG_ID}")["is_paused"] is paused
    # While the DAG was unpaused the scheduler may have created its scheduled run: end it, so that the next test
    # starts from a DAG with no active run.
    adapter.fail_active_runs(metadata, DAG_ID)
    metadata.commit()
    with pytest.raises(adapter.DagNotParsedError):
        adapter.set_paused(metadata, "nango_sync_nowhere", True)


@pytest.mark.integration
def test_trigger_then_fail_active_runs(live_airflow: AirflowServer, metadata: Session) -> None:
    """A run triggered on the paused DAG stays queued; failing the active runs fails exactly that run."""
    from nango_provider.plugins import airflow_internals as adapter

    run_id, state = adapter.trigger_run(metadata, DAG_ID, {"max_total": 5}, "admin")
    metadata.commit()
    assert state == "queued"
    run = airflow_view(live_airflow, f"dags/{DAG_ID}/dagRuns/{run_id}")
    assert (run["state"], run["conf"], run["run_type"], run["triggered_by"]) == (
        "queued",
        {"max_total": 5},
        "manual",
        "rest_api",
    )
    latest = adapter.latest_dag_runs(metadata, [DAG_ID])[DAG_ID]
    assert (latest["run_id"], latest["state"], latest["retrying"]) == (run_id, "queued", False)

    assert adapter.fail_active_runs(metadata, DAG_ID) == [run_id]
    metadata.commit()
    assert airflow_view(live_airflow, f"dags/{DAG_ID}/dagRuns/{run_id}")["state"] == "failed"
    assert adapter.fail_active_runs(metadata, DAG_ID) == []

    with pytest.raises(ValueError, match="max_total"):
        adapter.trigger_run(metadata, DAG_ID, {"max_total": 0}, "admin")
    metadata.rollback()
    with pytest.raises(adapter.DagNotParsedError):
        adapter.trigger_run(metadata, "nango_sync_nowhere", {}, "admin")
    metadata.rollback()


@pytest.mark.integration
def test_request_parse_is_taken_by_the_dag_processor(live_airflow: AirflowServer, metadata: Session) -> None:
    from airflow.models.dagbag import DagPriorityParsingRequest

    from nango_provider.plugins import airflow_internals as adapter

    files = adapter.dag_files(metadata, "nango_sync_", include_stale=False)
    assert files == {("dags-folder", "nango_syncs.py")}
    assert files <= adapter.dag_files(metadata, "nango_sync_", include_stale=True)
    pending = select(DagPriorityParsingRequest.relative_fileloc)
    assert adapter.request_parse(metadata, files) is True
    metadata.flush()
    assert "nango_syncs.py" in metadata.scalars(pending).all()
    metadata.commit()

    def taken() -> bool:
        metadata.expire_all()
        return "nango_syncs.py" not in metadata.scalars(pending).all()

    wait_for(taken, 60, "the DAG processor to take the parsing request")
    assert adapter.request_parse(metadata, []) is False
    assert adapter.dag_files(metadata, "nango_sync_nothing_", include_stale=True) == set()


@pytest.mark.integration
def test_import_errors_are_read_as_airflow_shows_them(live_airflow: AirflowServer, metadata: Session) -> None:
    from nango_provider.plugins import airflow_internals as adapter

    shown = airflow_view(live_airflow, "importErrors")["import_errors"]
    read = adapter.import_errors(metadata)
    assert [name for _, name, _ in read] == sorted(name for _, name, _ in read)  # by file
    assert sorted((name, trace) for _, name, trace in read) == sorted(
        (error["filename"], error["stack_trace"]) for error in shown
    )


@pytest.mark.integration
def test_audit_log_entries_show_in_airflow(live_airflow: AirflowServer, metadata: Session) -> None:
    from nango_provider.plugins import airflow_internals as adapter

    adapter.add_audit_log(metadata, "nango_adapter_check", DAG_ID, "admin", {"sync": "nested_objects"})
    metadata.commit()
    logs = airflow_view(live_airflow, "eventLogs", event="nango_adapter_check")["event_logs"]
    assert [(log["dag_id"], log["owner"], log["extra"]) for log in logs] == [
        (DAG_ID, "admin", '{"sync": "nested_objects"}')
    ]


# -- deprecations fail the suite ------------------------------------------------------------------------------


def test_a_removed_in_airflow_4_warning_fails_the_suite() -> None:
    """pyproject's ``filterwarnings`` turns Airflow's deprecations (and the project's own) into errors."""
    import warnings

    from airflow.exceptions import RemovedInAirflow4Warning

    with pytest.raises(RemovedInAirflow4Warning):
        warnings.warn("going away in Airflow 4", RemovedInAirflow4Warning, stacklevel=1)
    with pytest.raises(DeprecationWarning):
        warnings.warn("a deprecated nango_provider API", DeprecationWarning, stacklevel=1)
