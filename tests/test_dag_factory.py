"""The DAG factory: schedules, DAG settings, params, the Asset outlet, definition errors that name file, sync
and field and are reported by their own DAG file (never by the one that builds the syncs), the parsing-context
shortcut and the Python API."""

from __future__ import annotations

import copy
import gc
import json
import os
import pickle
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from airflow.sdk import DAG, Param

from nango_provider import definition as definition_module
from nango_provider.dag_factory import (
    ERRORS_FILE_NAME,
    build_dag,
    find_syncs,
    load_sync_dags,
    nango_sync,
    report_definition_errors,
    sync_asset,
)
from nango_provider.definition import SyncDefinition
from nango_provider.exceptions import InvalidSyncDefinitionsError, SyncDefinitionError
from nango_provider.operators.sync import NangoSyncOperator

POKEMON = """
syncs:
  pokemon:
    url: https://pokeapi.co/api/v2/pokemon
    unique_key: name
    paging_response_path: next
    frequency: {frequency}
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("frequency", "expected"),
    [
        ("15m", timedelta(minutes=15)),
        ("1h", timedelta(hours=1)),
        ("90 minutes", timedelta(minutes=90)),
        ("1 day", timedelta(days=1)),
        ("'*/15 * * * *'", "*/15 * * * *"),
        ("'@daily'", "@daily"),
        ("null", None),
    ],
)
def test_frequency_becomes_the_schedule(tmp_path: Path, frequency: str, expected: object) -> None:
    write(tmp_path, "pokemon.yaml", POKEMON.format(frequency=frequency))
    dag = load_sync_dags(tmp_path)["nango_sync_pokemon"]
    assert dag.schedule == expected


def test_default_frequency_is_hourly_and_dag_settings(tmp_path: Path) -> None:
    write(tmp_path, "pokemon.yml", POKEMON.replace("    frequency: {frequency}\n", ""))
    dag = load_sync_dags(tmp_path)["nango_sync_pokemon"]
    assert dag.schedule == timedelta(hours=1)
    assert dag.catchup is False and dag.max_active_runs == 1
    assert set(dag.tags) == {"nango", "sync"}
    task = dag.get_task("sync")
    assert isinstance(task, NangoSyncOperator)
    assert task.retries == 3 and task.retry_exponential_backoff
    assert [outlet.uri for outlet in task.outlets] == ["x-nango://postgres_default/nango/pokemon"]
    assert task.outlets[0] == sync_asset("nango.pokemon")


def test_params_are_validated_by_the_form_and_documented(tmp_path: Path) -> None:
    write(tmp_path, "pokemon.yaml", POKEMON.format(frequency="1h"))
    dag = load_sync_dags(tmp_path)["nango_sync_pokemon"]
    params = dag.params.dump()
    assert params == {"full_refresh": False, "max_total": None}
    schema = {name: dag.params.get_param(name).schema for name in params}
    assert schema["full_refresh"]["type"] == "boolean" and schema["max_total"]["type"] == ["null", "integer"]
    assert all(dag.params.get_param(name).description for name in params)
    with pytest.raises(ValueError):
        dag.params.get_param("max_total").resolve("many")
    with pytest.raises(ValueError):
        dag.params.get_param("max_total").resolve(0)  # minimum 1
    # Draft 7, whose meta-schema is cheap to check: Airflow checks each schema again for every DAG it builds.
    assert {s["$schema"] for s in schema.values()} == {"http://json-schema.org/draft-07/schema#"}


def test_doc_md_shows_the_definition_with_secrets_redacted(tmp_path: Path) -> None:
    write(
        tmp_path,
        "secret.yaml",
        """
syncs:
  crm:
    url: https://user:hunter2@api.example.com/contacts?api_key=abc123secret&limit=5
    headers:
      Authorization: Bearer live-token-xyz
      Accept: application/json
""",
    )
    dag = load_sync_dags(tmp_path)["nango_sync_crm"]
    assert "Accept: application/json" in dag.doc_md
    for secret in ("hunter2", "abc123secret", "live-token-xyz"):
        assert secret not in dag.doc_md and secret not in (dag.description or "")
    assert "limit=5" in dag.doc_md


def test_doc_md_shows_the_frequency_as_written(tmp_path: Path) -> None:
    write(tmp_path, "pokemon.yaml", POKEMON.format(frequency="30m"))
    dag = load_sync_dags(tmp_path)["nango_sync_pokemon"]
    block = dag.doc_md.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert yaml.safe_load(block)["pokemon"]["frequency"] == "30m" and "0:30:00" not in dag.doc_md
    assert dag.schedule == timedelta(minutes=30)


def test_every_yaml_file_under_the_folder_is_read(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", POKEMON.format(frequency="1h"))
    write(tmp_path, "team/b.yml", "syncs:\n  other:\n    url: https://api.example.com/x\n")
    write(tmp_path, "notes.txt", "syncs: nope")
    assert sorted(load_sync_dags(tmp_path)) == ["nango_sync_other", "nango_sync_pokemon"]


def test_a_broken_file_is_an_import_error_of_the_errors_file_only_and_every_valid_sync_loads(
    airflow_dag_folder: Path, tmp_path: Path
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    write(tmp_path, "good.yaml", POKEMON.format(frequency="1h"))
    bad = write(
        tmp_path,
        "bad.yaml",
        "syncs:\n  contacts:\n    url: https://api.example.com/c\n    paging_requests_path: after\n"
        "  fine:\n    url: https://api.example.com/f\n",
    )
    write(tmp_path, "worse.yaml", "syncs:\n  Bad-Name:\n    url: https://api.example.com/c\n")
    bag = DagBag(str(airflow_dag_folder))
    assert {"nango_sync_pokemon", "nango_sync_fine"} <= set(bag.dag_ids)
    assert not any("definition" in dag_id for dag_id in bag.dag_ids)
    ((failed_file, error),) = bag.import_errors.items()
    assert Path(failed_file).name == ERRORS_FILE_NAME
    assert f"{bad}: sync 'contacts', field 'paging_requests_path'" in error
    assert "did you mean 'paging_request_path'" in error
    assert "'Bad-Name'" in error and "2 invalid sync definitions (every valid sync is loaded):" in error


def test_load_sync_dags_logs_definition_errors_and_never_fails(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path, "good.yaml", POKEMON.format(frequency="1h"))
    write(tmp_path, "bad.yaml", "syncs:\n  contacts:\n    urll: https://api.example.com/c\n")
    namespace: dict[str, object] = {}
    assert list(load_sync_dags(tmp_path, namespace, registry=False)) == ["nango_sync_pokemon"]
    assert list(namespace) == ["nango_sync_pokemon"]
    (record,) = [record for record in caplog.records if "invalid sync definition" in record.getMessage()]
    assert "field 'urll'" in record.getMessage() and ERRORS_FILE_NAME in record.getMessage()


def test_report_definition_errors_lists_each_problem_once(tmp_path: Path) -> None:
    write(tmp_path, "good.yaml", POKEMON.format(frequency="1h"))
    report_definition_errors(tmp_path, registry=False)  # nothing to report
    bad = write(tmp_path, "bad.yaml", "syncs:\n  contacts:\n    urll: https://api.example.com/c\n")
    with pytest.raises(InvalidSyncDefinitionsError) as raised:
        report_definition_errors(tmp_path, registry=False)
    assert raised.value.errors == (f"{bad}: sync 'contacts', field 'urll': unknown field; did you mean 'url'?",)
    assert str(raised.value).startswith("1 invalid sync definition (every valid sync is loaded):\n")
    assert InvalidSyncDefinitionsError.lines_of(str(raised.value)) == list(raised.value.errors)


def test_same_sync_name_in_two_files_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", POKEMON.format(frequency="1h"))
    write(tmp_path, "b.yaml", POKEMON.format(frequency="2h"))
    found = find_syncs(tmp_path, registry=False)
    assert [definition.name for definition, _ in found.definitions] == ["pokemon"]
    with pytest.raises(InvalidSyncDefinitionsError, match=r"'pokemon' is already defined in .*a\.yaml"):
        report_definition_errors(tmp_path, registry=False)


def test_a_missing_folder_is_reported(tmp_path: Path) -> None:
    assert load_sync_dags(tmp_path / "nope", registry=False) == {}
    with pytest.raises(InvalidSyncDefinitionsError, match="does not exist"):
        report_definition_errors(tmp_path / "nope", registry=False)


def test_parsing_for_one_task_builds_only_that_dag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for index in range(20):
        write(tmp_path, f"s{index}.yaml", f"syncs:\n  sync_{index}:\n    url: https://api.example.com/{index}\n")
    write(tmp_path, "broken.yaml", "syncs:\n  broken:\n    nope: 1\n")
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "nango_sync_sync_7")
    namespace: dict[str, object] = {}
    assert list(load_sync_dags(tmp_path, namespace)) == ["nango_sync_sync_7"]
    assert list(namespace) == ["nango_sync_sync_7"]


def test_nango_sync_builds_the_same_dag_from_python() -> None:
    dag = nango_sync(
        "pokemon",
        "https://pokeapi.co/api/v2/pokemon",
        response_path="results",
        unique_key="name",
        paging_response_path="next",
        frequency="@daily",
        dag_kwargs={"tags": ["team-a"]},
    )
    assert dag.dag_id == "nango_sync_pokemon" and dag.schedule == "@daily" and dag.tags == {"team-a"}
    task = dag.get_task("sync")
    assert (task.url, task.unique_key, task.paging_response_path) == (
        "https://pokeapi.co/api/v2/pokemon",
        "name",
        "next",
    )
    with pytest.raises(SyncDefinitionError, match="did you mean 'paging_response_path'"):
        nango_sync("pokemon", "https://pokeapi.co/api/v2/pokemon", paging_respone_path="next")


def test_each_definition_is_validated_once_when_the_dags_are_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The factory validates; the operator it builds only stores the validated values (no second check)."""
    for index in range(3):
        write(tmp_path, f"s{index}.yaml", f"syncs:\n  sync_{index}:\n    url: https://api.example.com/{index}\n")
    validated: list[str] = []
    build = definition_module._Validator.build

    def counting_build(self: Any, fields: Any) -> Any:
        validated.append(self.name)
        return build(self, fields)

    monkeypatch.setattr(definition_module._Validator, "build", counting_build)
    dags = load_sync_dags(tmp_path, registry=False)
    assert sorted(validated) == ["sync_0", "sync_1", "sync_2"]
    assert dags["nango_sync_sync_1"].get_task("sync").url == "https://api.example.com/1"


def test_the_doc_shows_the_definition_as_yaml_that_reads_back_the_same(tmp_path: Path) -> None:
    write(
        tmp_path,
        "crm.yaml",
        """
syncs:
  crm:
    url: https://api.example.com/contacts?limit=5
    headers: {Accept: application/json, X-Note: "a: b #c", X-Flag: "yes"}
    query_params: {"on": "123", empty: ""}
    frequency: "*/15 * * * *"
    max_total: 70
""",
    )
    import yaml

    dag = load_sync_dags(tmp_path)["nango_sync_crm"]
    block = dag.doc_md.split("```yaml\n", 1)[1].split("```", 1)[0]
    shown = yaml.safe_load(block)["crm"]
    assert shown["headers"] == {"Accept": "application/json", "X-Note": "a: b #c", "X-Flag": "yes"}
    assert shown["query_params"] == {"on": "123", "empty": ""}
    assert shown["frequency"] == "*/15 * * * *" and shown["max_total"] == 70


def test_operator_takes_deletes_soft_delete_metadata_and_auto_mapping() -> None:
    operator = NangoSyncOperator(
        task_id="sync", url="https://api.example.com", soft_delete=False, metadata={"tenant": "acme"}, auto_mapping=True
    )
    definition = operator.build_definition()
    assert (definition.deletes, definition.metadata, definition.auto_mapping) == ("keep", {"tenant": "acme"}, True)
    assert "metadata" in NangoSyncOperator.template_fields
    copied = NangoSyncOperator.from_definition(definition, task_id="again")
    assert copied.build_definition().deletes == "keep"
    both = NangoSyncOperator(task_id="sync", url="https://api.example.com", soft_delete=True, deletes="hard")
    with pytest.raises(SyncDefinitionError, match="not both"):
        both.build_definition()
    dag = nango_sync("objects", "https://api.example.com/objects", deletes="hard", auto_mapping=True)
    task = dag.get_task("sync")
    assert (task.deletes, task.auto_mapping) == ("hard", True)


def test_pool_and_pool_slots_become_the_task_s_and_the_rate_budget_reaches_the_definition() -> None:
    dag = nango_sync(
        "limited", "https://api.example.com/items", pool="example_api", pool_slots=2, max_requests_per_second=5
    )
    task = dag.get_task("sync")
    assert (task.pool, task.pool_slots, task.max_requests_per_second) == ("example_api", 2, 5.0)
    plain = nango_sync("plain", "https://api.example.com/items").get_task("sync")
    assert (plain.pool, plain.pool_slots, plain.max_requests_per_second) == ("default_pool", 1, None)
    operator = NangoSyncOperator(task_id="sync", url="https://api.example.com", max_requests_per_second=3)
    assert operator.build_definition().max_requests_per_second == 3.0
    with pytest.raises(SyncDefinitionError, match="field 'pool'"):
        nango_sync("bad", "https://api.example.com/items", pool="two words")


def test_each_connection_s_mapped_task_runs_in_the_pool() -> None:
    dag = nango_sync(
        "tenants",
        "/items",
        unique_key="id",
        connections=["tenant_a", "tenant_b"],
        pool="tenant_api",
        max_requests_per_second=2,
    )
    task = dag.get_task("sync")
    assert task.partial_kwargs["pool"] == "tenant_api"
    assert task.partial_kwargs["max_requests_per_second"] == 2.0


# -- building thousands of DAGs cheaply, without changing them ---------------------------------------------------

PARAM_DIALECT = "http://json-schema.org/draft-07/schema#"
VARIED_SYNCS = """
syncs:
  plain:
    url: https://api.example.com/plain
  everything:
    url: https://user:pw@api.example.com/v1/items?api_key=SECRET123&x=1
    method: post
    headers: {Authorization: "Bearer abc", Accept: application/json, X-Note: "a: b #c"}
    query_params: {"on": "123", empty: "", flag: true, many: [1, 2]}
    body: {filter: {a: [1, 2, {b: null}]}, n: 1.5}
    response_path: $.data[*]
    unique_key: id
    paging_request_path: cursor
    paging_response_path: next
    frequency: "*/15 * * * *"
    max_total: 1
    table: crm.items
    http_conn_id: my_api
    postgres_conn_id: pg
    deletes: hard
    metadata: {team: a, tenant: "{{ dag_run.conf.tenant }}"}
    auto_mapping: true
  largest:
    url: "https://api.example.com/{{ var.value.path }}"
    frequency: "@daily"
    unique_key: id
    incremental: {record_field: updatedAt, request_name: updated_since, lookback: 10m}
    max_total: 9223372036854775807
  triggered:
    url: https://api.example.com/t
    frequency: null
    soft_delete: false
  tenants:
    url: /v1/items
    unique_key: id
    connections: [tenant_a, tenant_b]
  tenants_templated:
    url: /v1/items
    unique_key: id
    connections: "{{ var.json.tenants }}"
"""


def plain_dag(definition: SyncDefinition, **dag_kwargs: Any) -> DAG:
    """The factory's DAG built the plain way: fresh params with plain schemas in ``DAG(...)``, checked by Airflow."""
    from nango_provider import dag_factory

    params = {
        "full_refresh": Param(
            False,
            description="Start from the first page, ignoring the checkpoint a failed try of this run left.",
            schema={"$schema": PARAM_DIALECT, "type": "boolean", "title": "Full refresh"},
        ),
        "max_total": Param(
            definition.max_total,
            description="Stop after this many records (empty: no limit). A cut run marks no record as deleted.",
            schema={
                "$schema": PARAM_DIALECT,
                "type": ["null", "integer"],
                "minimum": 1,
                "maximum": 2**63 - 1,
                "title": "Max records",
            },
        ),
    }
    options = {
        "dag_id": definition.dag_id,
        "schedule": definition.frequency,
        "start_date": datetime(2024, 1, 1, tzinfo=UTC),
        "catchup": False,
        "max_active_runs": 1,
        "tags": ["nango", "sync"],
        "default_args": dag_factory.DEFAULT_TASK_ARGS,
        "description": dag_factory._description(definition),
        "doc_md": dag_factory._doc_md(definition),
        "params": params,
        **dag_kwargs,
    }
    task_kwargs: dict[str, Any] = {
        "task_id": "sync",
        "full_refresh": "{{ params.full_refresh }}",
        "max_total": "{{ params.max_total }}",
        "pre_execute": dag_factory.refuse_unknown_run_params,
        "outlets": [sync_asset(".".join(definition.qualified_table), definition.postgres_conn_id)],
    }
    with DAG(**options) as dag:
        if definition.connections is None:
            NangoSyncOperator.from_definition(definition, **task_kwargs)
        else:
            dag_factory._sync_per_connection(definition, task_kwargs)
    return dag


def serialized(dag: DAG) -> dict[str, Any]:
    """The DAG as the DAG processor stores it, without where it was defined."""
    from airflow.serialization.serialized_objects import DagSerialization

    data = DagSerialization.to_dict(dag)
    data["dag"].pop("fileloc", None)
    data["dag"].pop("relative_fileloc", None)
    return data


@pytest.mark.parametrize("api_created", [False, True], ids=["yaml", "api"])
def test_the_factory_builds_the_dags_airflow_would_build_from_the_same_arguments(
    tmp_path: Path, api_created: bool
) -> None:
    """Shared param schemas and params added after the DAG's own check change nothing Airflow stores."""
    write(tmp_path, "varied.yaml", VARIED_SYNCS)
    extra: dict[str, Any] = {"is_paused_upon_creation": False, "tags": ["nango", "sync", "api"]} if api_created else {}
    found = find_syncs(tmp_path, registry=False)
    assert len(found.definitions) == 6 and not found.errors
    for definition, _ in found.definitions:
        assert serialized(build_dag(definition, **extra)) == serialized(plain_dag(definition, **extra))


def test_every_param_default_the_factory_sets_passes_airflows_check(tmp_path: Path) -> None:
    write(tmp_path, "varied.yaml", VARIED_SYNCS)
    dags = load_sync_dags(tmp_path, registry=False)
    checked = {dag_id: dag.params.validate() for dag_id, dag in dags.items()}
    assert checked["nango_sync_everything"] == {"full_refresh": False, "max_total": 1}
    assert checked["nango_sync_largest"] == {"full_refresh": False, "max_total": 2**63 - 1}
    assert checked["nango_sync_plain"] == {"full_refresh": False, "max_total": None}


def test_params_given_by_the_caller_are_still_checked_by_airflow() -> None:
    with pytest.raises(ValueError, match="not allowed to define a Schedule"):
        nango_sync(
            "pokemon",
            "https://pokeapi.co/api/v2/pokemon",
            dag_kwargs={"params": {"team": Param(5, schema={"type": "string"})}},
        )
    dag = nango_sync("pokemon", "https://pokeapi.co/api/v2/pokemon", dag_kwargs={"params": {"team": Param("a")}})
    assert dag.params.dump() == {"team": "a"}


def test_param_schemas_are_shared_by_every_dag_and_cannot_be_changed(tmp_path: Path) -> None:
    write(tmp_path, "varied.yaml", VARIED_SYNCS)
    dags = list(load_sync_dags(tmp_path, registry=False).values())
    task_params = dags[0].get_task("sync").params
    schemas = {id(params.get_param("max_total").schema) for params in [task_params, *(d.params for d in dags)]}
    assert len(schemas) == 1  # one object, in every DAG and in the task's deep copy of the DAG's params
    schema = dags[0].params.get_param("max_total").schema
    with pytest.raises(TypeError, match="shared by every sync DAG"):
        schema["maximum"] = 5
    with pytest.raises(TypeError, match="shared by every sync DAG"):
        schema.update(minimum=0)
    assert copy.deepcopy(schema) is schema
    for copied in (copy.copy(schema), pickle.loads(pickle.dumps(schema))):
        assert type(copied) is dict and copied == schema
    assert json.loads(json.dumps(schema)) == schema


def test_cycle_collection_is_paused_while_the_dags_are_built_and_then_resumed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nango_provider import dag_factory

    write(tmp_path, "varied.yaml", VARIED_SYNCS)
    collecting: list[bool] = []
    build = dag_factory.build_dag

    def recording_build(definition: SyncDefinition, **kwargs: Any) -> DAG:
        collecting.append(gc.isenabled())
        return build(definition, **kwargs)

    monkeypatch.setattr(dag_factory, "build_dag", recording_build)
    assert gc.isenabled()
    frozen = gc.get_freeze_count()
    load_sync_dags(tmp_path, registry=False)
    assert collecting == [False] * 6 and gc.isenabled() and gc.get_freeze_count() == frozen
    gc.disable()  # whoever turned it off keeps it off
    try:
        load_sync_dags(tmp_path, registry=False)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_objects_frozen_before_the_dags_are_built_stay_frozen(tmp_path: Path) -> None:
    """Airflow's DAG processor freezes its objects before it forks the process that parses a DAG file."""
    write(tmp_path, "varied.yaml", VARIED_SYNCS)
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        load_sync_dags(tmp_path, registry=False)
        # None was unfrozen and none added (a frozen object may still be freed when nothing refers to it).
        assert frozen * 0.99 <= gc.get_freeze_count() <= frozen and gc.isenabled()
    finally:
        gc.unfreeze()


def test_a_task_of_a_yaml_sync_builds_its_dag_without_the_registrys_modules(tmp_path: Path) -> None:
    """What a task pays to parse its DAG: psycopg and Airflow's Postgres hook are not even imported."""
    write(tmp_path, "varied.yaml", VARIED_SYNCS)
    script = (
        "import sys\n"
        "from nango_provider.dag_factory import load_sync_dags\n"
        f"print(sorted(load_sync_dags({str(tmp_path)!r})))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'psycopg' or 'providers.postgres.hooks' in m))\n"
    )
    env = {
        **os.environ,
        "_AIRFLOW_PARSING_CONTEXT_DAG_ID": "nango_sync_plain",
        "AIRFLOW_CONN_POSTGRES_DEFAULT": "postgresql://nobody@127.0.0.1:1/nowhere",
    }
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.splitlines() == ["['nango_sync_plain']", "[]"]


def test_airflow_does_not_check_the_factorys_own_param_defaults_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check took about a quarter of the time to build a sync's DAG; the definition checked the values."""
    write(tmp_path, "varied.yaml", VARIED_SYNCS)
    checked: list[Any] = []
    resolve = Param.resolve

    def counting_resolve(self: Param, *args: Any, **kwargs: Any) -> Any:
        checked.append(self.value)
        return resolve(self, *args, **kwargs)

    monkeypatch.setattr(Param, "resolve", counting_resolve)
    assert len(load_sync_dags(tmp_path, registry=False)) == 6 and checked == []


def test_the_dags_of_a_folder_are_stored_as_airflow_would_store_them_built_one_by_one(tmp_path: Path) -> None:
    """Params added once the task exists, and the start date as a pendulum datetime, change nothing stored."""
    from nango_provider import dag_factory

    write(tmp_path, "varied.yaml", VARIED_SYNCS)
    dags = load_sync_dags(tmp_path, registry=False)
    defaults = dag_factory._configured_dag_defaults()
    for definition, _ in find_syncs(tmp_path, registry=False).definitions:
        assert serialized(dags[definition.dag_id]) == serialized(plain_dag(definition, **defaults))


def test_the_task_holds_its_own_copies_of_the_dags_params_marked_as_the_dags(tmp_path: Path) -> None:
    write(tmp_path, "varied.yaml", VARIED_SYNCS)
    for dag in load_sync_dags(tmp_path, registry=False).values():
        for task in dag.tasks:
            assert list(task.params) == list(dag.params) == ["full_refresh", "max_total"]
            for name in dag.params:
                ours, theirs = task.params.get_param(name), dag.params.get_param(name)
                assert ours is not theirs and ours.source == "dag" and theirs.source is None
                assert (ours.value, ours.description, ours.schema) == (theirs.value, theirs.description, theirs.schema)


def test_a_sync_file_with_windows_line_ends_reads_as_the_same_definitions(tmp_path: Path) -> None:
    """Sync files are read as bytes and decoded, without Python's newline translation: YAML's own does the same."""
    text = VARIED_SYNCS.replace("  plain:\n", '  plain:\n    metadata: {note: "a\\r\\nb"}\n')
    (tmp_path / "unix").mkdir()
    (tmp_path / "windows").mkdir()
    (tmp_path / "unix" / "varied.yaml").write_bytes(text.encode())
    (tmp_path / "windows" / "varied.yaml").write_bytes(text.replace("\n", "\r\n").encode())
    unix, windows = (find_syncs(tmp_path / name, registry=False) for name in ("unix", "windows"))
    assert not unix.errors and not windows.errors and len(unix.definitions) == 6
    assert [d for d, _ in windows.definitions] == [d for d, _ in unix.definitions]
    assert unix.definitions[0][0].metadata == {"note": "a\r\nb"}
