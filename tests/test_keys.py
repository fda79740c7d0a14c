"""API keys: random, shown once, stored only as SHA-256, revocable; on both backends."""

from __future__ import annotations

import hashlib

import pytest
from conftest import run_cli

from counterfake.db import connect
from counterfake.keys import ROLES, ApiKeyError, KeyStore


@pytest.fixture
def store(registry_target):
    with connect(registry_target) as db:
        yield KeyStore(db)


def test_key_authenticates_with_its_role_until_revoked(store):
    key, secret = store.create("platform", "acme")
    assert store.authenticate(secret) == key and key.role == "platform" and key.name == "acme"
    store.revoke(key.id)
    assert store.authenticate(secret) is None
    [listed] = store.list()
    assert listed.id == key.id and listed.revoked_at is not None


def test_secret_is_random_long_and_stored_only_as_its_sha256(store, registry_target):
    secrets = [store.create(role, f"key for {role}")[1] for role in ROLES]
    assert len(set(secrets)) == len(ROLES)
    assert all(len(secret) >= 4 + 43 for secret in secrets)  # 256 bits in base64url after "cfk_"
    with connect(registry_target) as db:
        stored = [row[0] for row in db.execute("SELECT secret_sha256 FROM api_keys ORDER BY id")]
        everything = repr(db.execute("SELECT * FROM api_keys"))
    assert stored == [hashlib.sha256(secret.encode()).hexdigest() for secret in secrets]
    assert not any(secret in everything for secret in secrets)


@pytest.mark.parametrize("guess", ["", "cfk_", "cfk_nope", "x" * 10_000, "' OR 1=1 --"])
def test_unknown_secrets_do_not_authenticate(store, guess):
    store.create("admin", "root")
    assert store.authenticate(guess) is None


def test_revoking_twice_keeps_the_first_time_and_unknown_id_is_an_error(store):
    key, _ = store.create("reviewer", "helpline")
    store.revoke(key.id)
    first = store.list()[0].revoked_at
    store.revoke(key.id)
    assert store.list()[0].revoked_at == first
    with pytest.raises(ApiKeyError, match="no API key with id 999"):
        store.revoke(999)


def test_unknown_role_and_empty_name_are_refused(store):
    with pytest.raises(ApiKeyError, match="unknown role 'root'"):
        store.create("root", "x")
    with pytest.raises(ApiKeyError, match="needs a name"):
        store.create("platform", "  ")
    assert store.list() == []


def test_command_line_prints_the_secret_once_and_revokes(tmp_path, registry_target):
    created = run_cli(
        "keys",
        "create",
        "--role",
        "platform",
        "--name",
        "acme",
        "--db",
        registry_target,
        cwd=tmp_path,
    )
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    with connect(registry_target) as db:
        assert KeyStore(db).authenticate(secret).name == "acme"
    listed = run_cli("keys", "list", "--db", registry_target, cwd=tmp_path)
    assert "platform\tacme" in listed.stdout and "active" in listed.stdout
    assert secret not in listed.stdout + listed.stderr
    assert run_cli("keys", "revoke", "1", "--db", registry_target, cwd=tmp_path).returncode == 0
    assert "revoked" in run_cli("keys", "list", "--db", registry_target, cwd=tmp_path).stdout
    with connect(registry_target) as db:
        assert KeyStore(db).authenticate(secret) is None
    missing = run_cli("keys", "revoke", "42", "--db", registry_target, cwd=tmp_path)
    assert (
        missing.returncode == 2 and missing.stderr.strip() == "counterfake: no API key with id 42"
    )
