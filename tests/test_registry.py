"""The registry of API-created syncs (``nango._nango_definitions``) on a real Postgres, and the DAG factory
building their DAGs next to the YAML ones: duplicates, an unreachable or silent registry (which never holds up
the YAML syncs and is reported once) and the parsing shortcut."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from nango_provider.dag_factory import ERRORS_FILE_NAME, find_syncs, load_sync_dags, report_definition_errors
from nango_provider.exceptions import InvalidSyncDefinitionsError, StoreError, SyncDefinitionError, SyncExistsError
from nango_provider.store.registry import SyncRegistry

pytestmark = pytest.mark.integration

POKEMON = {"url": "https://pokeapi.co/api/v2/pokemon", "unique_key": "name", "paging_response_path": "next"}
YAML = "syncs:\n  pokemon:\n    url: https://pokeapi.co/api/v2/pokemon\n    unique_key: name\n"


def errors_of(folder: Path) -> str:
    """What ``nango_sync_errors.py`` would report for ``folder`` (empty when nothing)."""
    try:
        report_definition_errors(folder)
    except InvalidSyncDefinitionsError as error:
        return str(error)
    return ""


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
    assert sorted(dags) == ["nango_sync_pokedex", "nango_sync_pokemon"] and errors_of(tmp_path) == ""
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
    assert "nango._nango_definitions: sync 'pokemon' is already defined in" in errors_of(tmp_path)


def test_a_stored_definition_that_no_longer_validates_is_reported(db: str, tmp_path: Path) -> None:
    SyncRegistry().save("good", POKEMON)
    with psycopg.connect(db) as conn:
        conn.execute(
            "INSERT INTO nango._nango_definitions (name, fields) VALUES ('bad', '{\"url\": \"ftp://x\"}'::jsonb)"
        )
    namespace: dict[str, object] = {}
    assert list(load_sync_dags(tmp_path, namespace)) == ["nango_sync_good"]
    assert "nango._nango_definitions: sync 'bad', field 'url'" in errors_of(tmp_path)


def test_an_unreachable_registry_is_reported_and_yaml_syncs_still_load(
    db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pokemon.yaml").write_text(YAML)
    monkeypatch.setenv("AIRFLOW_CONN_NANGO_REGISTRY", "postgresql://nobody@127.0.0.1:1/nowhere")
    monkeypatch.setenv("NANGO_REGISTRY_CONN_ID", "nango_registry")
    namespace: dict[str, object] = {}
    assert list(load_sync_dags(tmp_path, namespace)) == ["nango_sync_pokemon"]
    assert "nango._nango_definitions: cannot connect to Postgres (nango_registry)" in errors_of(tmp_path)


def test_an_undefined_registry_connection_means_no_api_syncs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pokemon.yaml").write_text(YAML)
    monkeypatch.setenv("NANGO_REGISTRY_CONN_ID", "not_defined_anywhere")
    namespace: dict[str, object] = {}
    assert list(load_sync_dags(tmp_path, namespace)) == ["nango_sync_pokemon"] and errors_of(tmp_path) == ""


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


# -- a registry that does not answer ------------------------------------------------------------------------


@contextmanager
def closed_port() -> Iterator[tuple[int, list[socket.socket]]]:
    """A loopback port nothing listens on: connecting is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    yield port, []


@contextmanager
def silent_server() -> Iterator[tuple[int, list[socket.socket]]]:
    """A loopback server that accepts connections and never answers; the accepted connections."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    accepted: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        while not done.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], accepted
    finally:
        done.set()
        thread.join()
        for connection in [*accepted, listener]:
            connection.close()


@pytest.mark.parametrize("registry", [closed_port, silent_server], ids=["closed port", "never answers"])
def test_an_unresponsive_registry_holds_up_no_yaml_sync_and_is_reported_once(
    registry: type[closed_port], airflow_dag_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    for index in range(3):
        (tmp_path / f"s{index}.yaml").write_text(f"syncs:\n  sync_{index}:\n    url: https://api.example.com/{index}\n")
    with registry() as (port, accepted):
        monkeypatch.setenv("AIRFLOW_CONN_NANGO_REGISTRY", f"postgresql://nobody@127.0.0.1:{port}/nowhere")
        monkeypatch.setenv("NANGO_REGISTRY_CONN_ID", "nango_registry")
        started = time.monotonic()
        dags = load_sync_dags(tmp_path)
        elapsed = time.monotonic() - started
        assert sorted(dags) == ["nango_sync_sync_0", "nango_sync_sync_1", "nango_sync_sync_2"]
        assert elapsed < 1.5, f"the YAML syncs took {elapsed:.2f} s to build"
        assert len(accepted) <= 1  # one attempt per parse
        bag = DagBag(str(airflow_dag_folder))
    assert {"nango_sync_sync_0", "nango_sync_sync_1", "nango_sync_sync_2"} <= set(bag.dag_ids)
    ((failed_file, error),) = bag.import_errors.items()
    assert Path(failed_file).name == ERRORS_FILE_NAME
    assert error.count("nango._nango_definitions") == 1
    problem = "cannot connect to Postgres (nango_registry)"
    if registry is silent_server:
        problem = "Postgres (nango_registry) did not answer within 1 s"
    assert f"nango._nango_definitions: {problem}" in error
    assert "the syncs created through the REST API are not loaded" in error


def test_a_task_of_a_yaml_sync_never_connects_to_the_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry is read for a task's DAG only when no file defines its sync (see the test above)."""
    (tmp_path / "pokemon.yaml").write_text(YAML)
    with silent_server() as (port, accepted):
        monkeypatch.setenv("AIRFLOW_CONN_NANGO_REGISTRY", f"postgresql://nobody@127.0.0.1:{port}/nowhere")
        monkeypatch.setenv("NANGO_REGISTRY_CONN_ID", "nango_registry")
        monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "nango_sync_pokemon")
        started = time.monotonic()
        assert list(load_sync_dags(tmp_path)) == ["nango_sync_pokemon"]
        assert time.monotonic() - started < 1.0
        time.sleep(0.5)  # a connection attempt started in the background would have been accepted by now
        assert accepted == []


def test_the_wait_for_the_registry_is_configurable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pokemon.yaml").write_text(YAML)
    with silent_server() as (port, _):
        monkeypatch.setenv("AIRFLOW_CONN_NANGO_REGISTRY", f"postgresql://nobody@127.0.0.1:{port}/nowhere")
        monkeypatch.setenv("NANGO_REGISTRY_CONN_ID", "nango_registry")
        monkeypatch.setenv("NANGO_REGISTRY_TIMEOUT", "0.3")
        started = time.monotonic()
        found = find_syncs(tmp_path)
        assert time.monotonic() - started < 0.8
    assert found.registry_error == "nango._nango_definitions: Postgres (nango_registry) did not answer within 0.3 s"
    assert [definition.name for definition, _ in found.definitions] == ["pokemon"]


def test_a_slow_registry_query_is_cut_by_the_statement_timeout(db: str) -> None:
    registry = SyncRegistry()
    registry.save("pokedex", POKEMON)
    with psycopg.connect(db, autocommit=True) as locker:
        locker.execute("BEGIN")
        locker.execute("LOCK TABLE nango._nango_definitions IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        with pytest.raises(StoreError, match=r"did not answer within 0\.5 s|statement timeout"):
            registry.start_reading(0.5)()
        assert time.monotonic() - started < 1.0
        waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        deadline = time.monotonic() + 3
        while locker.execute(waiting).fetchone() != (0,):  # the helper's query ends although the lock is held
            assert time.monotonic() < deadline, "the registry query still waits for the lock"
            time.sleep(0.05)
        locker.execute("ROLLBACK")
    assert [getattr(item, "name", None) for item in registry.start_reading(1)()] == ["pokedex"]
