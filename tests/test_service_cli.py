"""`counterfake serve` from the command line: a key made by `counterfake keys create` works
against it, and an unusable registry is one line and exit status 2, before anything listens."""

from __future__ import annotations

import subprocess
import sys

from service_support import start_service

from counterfake.index.packed import read_stamp


def counterfake(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "counterfake.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_key_created_on_the_command_line_opens_the_service(tmp_path):
    db = str(tmp_path / "registry.db")
    created = counterfake("keys", "create", "--role", "registrar", "--name", "helpline", "--db", db)
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    service = start_service(db, tmp_path)
    try:
        with service.client(secret) as client:
            assert client.post("/subjects", json={"name": "alice"}).status_code == 201
            assert client.get("/subjects").json() == [{"subject": "alice", "photos": 0}]
        revoked = counterfake("keys", "revoke", "1", "--db", db)
        assert revoked.returncode == 0, revoked.stderr
        with service.client(secret) as client:
            assert client.get("/subjects").status_code == 401
    finally:
        service.stop()


def test_serve_refuses_an_unusable_registry_in_one_line(tmp_path):
    served = counterfake("serve", "--db", str(tmp_path), "--port", "1")
    assert served.returncode == 2
    assert served.stderr.strip() == f"counterfake: {tmp_path}: is a directory, not a registry file"


def test_serve_writes_its_packed_index_beside_a_registry_file_and_starts_from_it(tmp_path):
    """The first start indexes the registry and writes ``<registry>.index`` (saying so in one
    line); the next, here with two workers, reads it and says nothing."""
    db = str(tmp_path / "registry.db")
    assert (
        counterfake("keys", "create", "--role", "platform", "--name", "p", "--db", db).returncode
        == 0
    )
    first = start_service(db, tmp_path)
    first.stop()
    assert (tmp_path / "registry.db.index").is_file()
    assert f"packed index {db}.index: not there yet" in first.log.read_text()
    again = start_service(db, tmp_path, "--workers", "2")
    again.stop()
    assert "packed index" not in again.log.read_text()


def test_serve_on_the_compact_index_packs_it_and_a_worker_on_the_hash_rebuilds_the_file(tmp_path):
    """``--index compact`` writes the compact index to ``<registry>.index`` and starts from it
    the next time; a worker started on the multi-index hash finds the file holds the other
    index, says so in one line and writes its own."""
    db = str(tmp_path / "registry.db")
    assert (
        counterfake("keys", "create", "--role", "platform", "--name", "p", "--db", db).returncode
        == 0
    )
    first = start_service(db, tmp_path, "--index", "compact")
    first.stop()
    assert f"packed index {db}.index: not there yet" in first.log.read_text()
    again = start_service(db, tmp_path, "--index", "compact", "--workers", "2")
    again.stop()
    assert "packed index" not in again.log.read_text()
    hashed = start_service(db, tmp_path)
    hashed.stop()
    assert (
        f"packed index {db}.index: holds the compact index, not the multi-index hash; "
        "indexing the registry instead"
    ) in hashed.log.read_text()
    read_stamp(f"{db}.index", "hash")  # rewritten: it holds the multi-index hash now
