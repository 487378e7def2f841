"""The registry of API-created syncs (``nango._nango_definitions``) on a real Postgres, and the DAG factory
building their DAGs next to the YAML ones: duplicates, an unreachable registry and the parsing shortcut."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from nango_provider.dag_factory import ERRORS_DAG_ID, load_sync_dags
from nango_provider.exceptions import SyncDefinitionError, SyncExistsError
from nango_provider.store.registry import SyncRegistry

pytestmark = pytest.mark.integration

POKEMON = {"url": "https://pokeapi.co/api/v2/pokemon", "unique_key": "name", "paging_response_path": "next"}
YAML = "syncs:\n  pokemon:\n    url: https://pokeapi.co/api/v2/pokemon\n    unique_key: name\n"


def errors_of(namespace: dict[str, object]) -> str:
    placeholder = namespace.get(ERRORS_DAG_ID)
    if placeholder is None:
        return ""
    with pytest.raises(Exception) as raised:
        placeholder.validate()  # type: ignore[attr-defined]
    return str(raised.value)


def test_save_get_list_delete(db: str) -> None:
    registry = SyncRegistry()
    definition = registry.save("pokedex", {**POKEMON, "frequency": None})
    assert definition.dag_id == "nango_sync_pokedex" and definition.frequency is None
    stored = registry.get("pokedex")
    assert stored is not None and stored.definition == definition
    assert dict(stored.fields) == {**POKEMON, "frequency": None} and stored.created_at is not None
    assert [getattr(item, "name", item) for item in registry.iter_definitions()] == ["pokedex"]
    assert registry.delete("pokedex") is True and registry.delete("pokedex") is False
    assert registry.get("pokedex") is None and list(registry.iter_definitions()) == []


def test_an_invalid_definition_is_refused_with_the_yaml_message_and_not_stored(db: str) -> None:
    registry = SyncRegistry()
    with pytest.raises(SyncDefinitionError, match="did you mean 'paging_response_path'") as raised:
        registry.save("pokedex", {**POKEMON, "paging_respone_path": "next"})
    assert (raised.value.sync, raised.value.field) == ("pokedex", "paging_respone_path")
    assert list(registry.iter_definitions()) == []


def test_a_taken_name_is_refused_unless_replaced(db: str) -> None:
    registry = SyncRegistry()
    registry.save("pokedex", POKEMON)
    with pytest.raises(SyncExistsError, match=r"'pokedex' is already defined in nango\._nango_definitions"):
        registry.save("pokedex", {**POKEMON, "max_total": 5})
    registry.save("pokedex", {**POKEMON, "max_total": 5}, replace=True)
    stored = registry.get("pokedex")
    assert stored is not None and stored.definition.max_total == 5


def test_no_table_means_no_syncs(db: str) -> None:
    registry = SyncRegistry()
    assert registry.get("x") is None and list(registry.iter_definitions()) == [] and registry.delete("x") is False
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT to_regclass('nango._nango_definitions')").fetchone() == (None,)


def test_api_syncs_become_unpaused_dags_tagged_api_next_to_yaml_ones(db: str, tmp_path: Path) -> None:
    (tmp_path / "pokemon.yaml").write_text(YAML)
    SyncRegistry().save("pokedex", {**POKEMON, "frequency": "15m"})
    namespace: dict[str, object] = {}
    dags = load_sync_dags(tmp_path, namespace)
    assert sorted(dags) == ["nango_sync_pokedex", "nango_sync_pokemon"] and ERRORS_DAG_ID not in namespace
    api_dag, yaml_dag = dags["nango_sync_pokedex"], dags["nango_sync_pokemon"]
    assert set(api_dag.tags) == {"nango", "sync", "api"} and api_dag.is_paused_upon_creation is False
    assert set(yaml_dag.tags) == {"nango", "sync"} and yaml_dag.is_paused_upon_creation is None
    assert load_sync_dags(tmp_path, registry=False).keys() == {"nango_sync_pokemon"}


def test_a_name_in_yaml_and_in_the_registry_is_an_error(db: str, tmp_path: Path) -> None:
    (tmp_path / "pokemon.yaml").write_text(YAML)
    SyncRegistry().save("pokemon", {**POKEMON, "max_total": 5})
    namespace: dict[str, object] = {}
    dags = load_sync_dags(tmp_path, namespace)
    assert dags["nango_sync_pokemon"].params["max_total"] is None  # the YAML one (the API one says 5)
    assert "nango._nango_definitions: sync 'pokemon' is already defined in" in errors_of(namespace)


def test_a_stored_definition_that_no_longer_validates_is_reported(db: str, tmp_path: Path) -> None:
    SyncRegistry().save("good", POKEMON)
    with psycopg.connect(db) as conn:
        conn.execute(
            "INSERT INTO nango._nango_definitions (name, fields) VALUES ('bad', '{\"url\": \"ftp://x\"}'::jsonb)"
        )
    namespace: dict[str, object] = {}
    assert list(load_sync_dags(tmp_path, namespace)) == ["nango_sync_good"]
    assert "nango._nango_definitions: sync 'bad', field 'url'" in errors_of(namespace)


def test_an_unreachable_registry_is_reported_and_yaml_syncs_still_load(
    db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pokemon.yaml").write_text(YAML)
    monkeypatch.setenv("AIRFLOW_CONN_NANGO_REGISTRY", "postgresql://nobody@127.0.0.1:1/nowhere")
    monkeypatch.setenv("NANGO_REGISTRY_CONN_ID", "nango_registry")
    namespace: dict[str, object] = {}
    assert list(load_sync_dags(tmp_path, namespace)) == ["nango_sync_pokemon"]
    assert "nango._nango_definitions: cannot connect to Postgres (nango_registry)" in errors_of(namespace)


def test_an_undefined_registry_connection_means_no_api_syncs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pokemon.yaml").write_text(YAML)
    monkeypatch.setenv("NANGO_REGISTRY_CONN_ID", "not_defined_anywhere")
    namespace: dict[str, object] = {}
    assert list(load_sync_dags(tmp_path, namespace)) == ["nango_sync_pokemon"] and ERRORS_DAG_ID not in namespace


def test_parsing_for_one_task_reads_only_that_api_sync(
    db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pokemon.yaml").write_text(YAML)
    registry = SyncRegistry()
    for index in range(5):
        registry.save(f"api_{index}", POKEMON)
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "nango_sync_api_3")
    assert list(load_sync_dags(tmp_path)) == ["nango_sync_api_3"]
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "nango_sync_pokemon")
    assert list(load_sync_dags(tmp_path)) == ["nango_sync_pokemon"]
