"""The registry: no duplicates, deletion is real, and a bad file is a clear error."""

from __future__ import annotations

import sqlite3

import pytest

from counterfake.registry import Registry, RegistryError, default_db_path
from counterfake.signature.extract import make_signature


@pytest.fixture(scope="module")
def signature(photo):
    return make_signature(photo, label="photos/a.jpg", sha256="cd" * 32)


def test_registering_the_same_file_twice_does_not_duplicate_it(tmp_path, signature):
    with Registry(tmp_path / "r.db") as registry:
        assert registry.register("alice", [signature]) == (1, 0)
        assert registry.register("alice", [signature, signature]) == (0, 2)
        assert registry.subjects() == [("alice", 1)]


def test_signature_comes_back_from_the_database(tmp_path, signature):
    with Registry(tmp_path / "r.db") as registry:
        registry.register("alice", [signature])
        [(photo_id, back)] = list(registry.signatures())
        assert back.label == "photos/a.jpg"
        assert registry.photo(photo_id).subject == "alice"


def test_withdrawal_deletes_the_rows(tmp_path, signature):
    path = tmp_path / "r.db"
    with Registry(path) as registry:
        registry.register("alice", [signature])
        registry.register("bea", [signature])
        assert registry.withdraw("alice") == 1
        assert registry.withdraw("nobody") == 0
        assert [p.subject for p in registry.photos()] == ["bea"]
    rows = sqlite3.connect(path).execute("SELECT COUNT(*) FROM photos").fetchone()[0]
    assert rows == 1


def test_failed_registration_leaves_nothing_behind(tmp_path, signature):
    def signatures():
        yield signature
        raise RuntimeError("disk on fire")

    with Registry(tmp_path / "r.db") as registry:
        with pytest.raises(RuntimeError):
            registry.register("alice", signatures())
        assert registry.subjects() == []


def test_file_that_is_not_a_registry_is_a_clear_error(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("shopping list: milk, eggs\n" * 100)
    with pytest.raises(RegistryError, match="not a usable counterfake registry"):
        Registry(path)


def test_directory_is_not_a_registry(tmp_path):
    with pytest.raises(RegistryError, match="is a directory"):
        Registry(tmp_path)


def test_db_path_defaults_to_environment_then_current_folder(monkeypatch):
    monkeypatch.setenv("COUNTERFAKE_DB", "/tmp/elsewhere.db")
    assert default_db_path() == "/tmp/elsewhere.db"
    monkeypatch.delenv("COUNTERFAKE_DB")
    assert default_db_path() == "counterfake.db"
