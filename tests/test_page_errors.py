"""Definition errors as the Nango syncs page lists them: file, sync, field, message and hint, from the one line
each that Airflow stores as the import error of ``nango_sync_errors.py``."""

from __future__ import annotations

from pathlib import Path

import pytest

from nango_provider.definition import iter_definitions_file
from nango_provider.exceptions import SyncDefinitionError
from nango_provider.plugins.service import structured_error


def error_line(folder: Path, text: str) -> str:
    path = folder / "bad.yaml"
    path.write_text(text)
    (error,) = [item for item in iter_definitions_file(path) if isinstance(item, SyncDefinitionError)]
    return str(error)


def test_a_misspelled_field_is_split_into_file_sync_field_message_and_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NANGO_SYNCS_PATH", str(tmp_path))
    line = error_line(tmp_path, "syncs:\n  typo:\n    url: http://example.com/x\n    uniqe_key: id\n")
    assert structured_error(line) == {
        "text": line,
        "file": "bad.yaml",
        "sync": "typo",
        "field": "uniqe_key",
        "message": "unknown field",
        "hint": "did you mean 'unique_key'?",
    }


def test_a_file_outside_the_syncs_folder_shows_by_name_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NANGO_SYNCS_PATH", str(tmp_path / "elsewhere"))
    shown = structured_error(f"{tmp_path}/secret/place/x.yaml: sync 'a', field 'url': expected a URL, got 3")
    assert (shown["file"], shown["sync"], shown["field"]) == ("x.yaml", "a", "url")
    assert (shown["message"], shown["hint"]) == ("expected a URL, got 3", None)


def test_a_line_of_another_form_is_kept_whole() -> None:
    line = "the registry of API-created syncs cannot be read: connection refused"
    assert structured_error(line) == {
        "text": line,
        "file": None,
        "sync": None,
        "field": None,
        "message": line,
        "hint": None,
    }
