"""``counterfake registry migrate``: an old registry is refused until migrated; the migration
rewrites it in one transaction, a second run does nothing, and bad input loses nothing."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run_cli
from old_signatures import old_dumps, old_registry

from counterfake.db import connect
from counterfake.registered import RegistryError
from counterfake.registry import Registry
from counterfake.registry_migrate import migrate
from counterfake.registry_tables import SCHEMA_VERSION
from counterfake.signature import record
from counterfake.signature.extract import make_signature


@pytest.fixture(scope="module")
def old_signatures(photo, unrelated):
    """Signatures as the old form held them: 512 features of each orientation."""
    return [
        make_signature(photo, "photo.jpg", "ab" * 32, mirror=True),
        make_signature(unrelated, "unrelated.jpg", "cd" * 32, mirror=True),
    ]


def rows(target: str) -> list[tuple]:
    with connect(target) as db:
        return [tuple(row) for row in db.execute("SELECT id, signature FROM photos ORDER BY id")]


def version(target: str) -> str:
    with connect(target) as db:
        return db.execute("SELECT value FROM meta WHERE key = 'schema_version'")[0][0]


@pytest.mark.parametrize("old_version", [1, 2])
def test_an_unmigrated_registry_is_refused_in_one_line(
    registry_target, old_signatures, old_version
):
    old_registry(registry_target, old_signatures, old_version)
    with pytest.raises(RegistryError) as caught:
        Registry(registry_target)
    message = str(caught.value)
    assert "old signature format" in message and "counterfake registry migrate" in message
    assert "\n" not in message
    assert version(registry_target) == str(old_version)  # refusing changed nothing


@pytest.mark.parametrize("old_version", [1, 2])
def test_migrate_rewrites_an_old_registry(registry_target, old_signatures, old_version):
    old_registry(registry_target, old_signatures, old_version)
    before = rows(registry_target)
    done = migrate(registry_target)
    assert (done.old_version, done.photos) == (str(old_version), 2)
    assert done.bytes_after <= 2 * record.RECORD_BUDGET < done.bytes_before
    assert version(registry_target) == str(SCHEMA_VERSION)
    with Registry(registry_target) as registry:
        assert [p.photo_id for p in registry.photos()] == [photo_id for photo_id, _ in before]
        for (_, stored), made in zip(registry.signatures(), old_signatures, strict=True):
            assert (stored.label, stored.sha256) == (made.label, made.sha256)
            assert len(stored.mirrored) == 0 and len(stored.features) == len(made.features)
            np.testing.assert_array_equal(
                stored.features.descriptors, made.features.descriptors[: len(stored.features)]
            )
            np.testing.assert_array_equal(stored.grid, made.grid)
        # version 1 had no PDQ table: the migration fills it from the signatures
        assert sorted(row[3] for row in registry.pdq_hashes()) == sorted(
            s.pdq["original"].hex() for s in old_signatures
        )
        assert registry.changes_since(0)  # the feed is kept: photo ids did not change


def test_migrate_again_is_a_no_op_that_says_so(tmp_path, old_signatures):
    target = old_registry(tmp_path / "old.db", old_signatures)
    first = run_cli("registry", "migrate", target, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "migrated 2 signature(s) from schema 2" in first.stdout
    migrated = rows(target)
    again = run_cli("registry", "migrate", target, cwd=tmp_path)
    assert again.returncode == 0 and "nothing to do" in again.stdout
    assert rows(target) == migrated
    scan = run_cli("subjects", "--db", target, cwd=tmp_path)
    assert scan.returncode == 0 and scan.stdout.startswith("alice\t2 photo(s)")


def test_a_command_on_an_unmigrated_registry_exits_2_with_one_line(tmp_path, old_signatures):
    target = old_registry(tmp_path / "old.db", old_signatures)
    refused = run_cli("subjects", "--db", target, cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        f"counterfake: {target}: registry in the old signature format (schema version 2); "
        f"run 'counterfake registry migrate {target}' first"
    )


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda blob: blob[: len(blob) // 2], "checksum mismatch"),
        (lambda blob: b"\x00" * 64, "not a counterfake signature file"),
    ],
    ids=["truncated-row", "corrupt-row"],
)
def test_a_damaged_old_row_stops_the_migration_and_loses_nothing(
    registry_target, old_signatures, damage, problem
):
    old_registry(registry_target, old_signatures)
    with connect(registry_target) as db:
        blob = bytes(db.execute("SELECT signature FROM photos WHERE id = 2")[0][0])
        db.execute("UPDATE photos SET signature = ? WHERE id = 2", (damage(blob),))
    before = rows(registry_target)
    with pytest.raises(RegistryError) as caught:
        migrate(registry_target)
    message = str(caught.value)
    assert "photo 2" in message and problem in message and "nothing was migrated" in message
    assert "\n" not in message
    assert rows(registry_target) == before  # the first row's conversion was rolled back
    assert version(registry_target) == "2"


def test_migrating_a_missing_file_is_one_line_and_creates_nothing(tmp_path):
    missing = tmp_path / "absent.db"
    result = run_cli("registry", "migrate", str(missing), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == f"counterfake: {missing}: no such registry file"
    assert not missing.exists()


def test_migrating_a_file_that_is_not_a_registry_is_one_line(tmp_path):
    other = tmp_path / "notes.db"
    other.write_bytes(b"not a database" * 100)
    with pytest.raises(RegistryError, match=r"notes\.db: ") as caught:
        migrate(other)
    assert "\n" not in str(caught.value)
    assert other.read_bytes() == b"not a database" * 100


def test_an_old_cfsig_is_registered_in_the_compact_form(tmp_path, old_signatures):
    """An old .cfsig needs no migration: it is read and converted on load."""
    (tmp_path / "old.cfsig").write_bytes(old_dumps(old_signatures))
    result = run_cli(
        "register", "--signatures", "old.cfsig", "--subject", "alice", "--db", "r.db", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    with connect(str(tmp_path / "r.db")) as db:
        sizes = [n for (n,) in db.execute("SELECT length(signature) FROM photos")]
    assert len(sizes) == 2 and max(sizes) <= record.RECORD_BUDGET
