"""`counterfake serve` from the command line: a key made by `counterfake keys create` works
against it, and an unusable registry is one line and exit status 2, before anything listens."""

from __future__ import annotations

import subprocess
import sys

from service_support import start_service


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
