"""The registry on SQLite and on a real PostgreSQL server: no duplicates, deletion is real, a bad
file is a clear error, and workers follow registrations and withdrawals through the change feed.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest

from counterfake.db import connect, engine_errors
from counterfake.exchange import PdqRecord
from counterfake.registered import Change, RegistryError, default_db_path
from counterfake.registry import Registry
from counterfake.signature.extract import make_signature


@pytest.fixture(scope="module")
def signature(photo):
    return make_signature(photo, label="photos/a.jpg", sha256="cd" * 32)


def copy_of(signature, n: int):
    """The same signature as if from another file (another SHA-256)."""
    return replace(signature, label=f"photos/{n}.jpg", sha256=f"{n:064x}")


def count(target: str, table: str) -> int:
    with connect(target) as db:
        return db.execute(f"SELECT COUNT(*) FROM {table}")[0][0]


def test_registering_the_same_file_twice_does_not_duplicate_it(registry_target, signature):
    with Registry(registry_target) as registry:
        assert registry.register("alice", [signature]) == (1, 0)
        assert registry.register("alice", [signature, signature]) == (0, 2)
        assert registry.subjects() == [("alice", 1)]


def test_signature_comes_back_from_the_database(registry_target, signature):
    with Registry(registry_target) as registry:
        registry.register("alice", [signature])
        [(photo_id, back)] = list(registry.signatures())
        assert back.label == "photos/a.jpg"
        assert back.pdq["original"] == signature.pdq["original"]
        assert registry.photo(photo_id).subject == "alice"
        assert registry.photo_pdq(photo_id) == signature.pdq


def test_signatures_stream_past_one_page(registry_target, signature):
    with Registry(registry_target) as registry:
        registry.register("alice", [copy_of(signature, n) for n in range(1203)])
        ids = [photo_id for photo_id, _ in registry.signatures()]
        assert len(ids) == 1203 and ids == sorted(set(ids))
        dihedral = list(registry.pdq_hashes(dihedral=True))
        assert len(dihedral) == 8 * 1203 and len({row[1] for row in dihedral}) == 1203


def test_withdrawal_deletes_the_rows(registry_target, signature):
    with Registry(registry_target) as registry:
        registry.register("alice", [signature])
        registry.register("bea", [signature])
        assert registry.withdraw("alice") == 1
        assert registry.withdraw("nobody") == 0
        assert [p.subject for p in registry.photos()] == ["bea"]
    assert count(registry_target, "photos") == 1
    assert count(registry_target, "photo_pdq") == 8  # bea's photo's eight orientations only


@pytest.mark.parametrize("failure", [RuntimeError, KeyboardInterrupt])
def test_failed_registration_leaves_nothing_behind(registry_target, signature, failure):
    def signatures():
        yield signature
        raise failure("disk on fire")

    with Registry(registry_target) as registry:
        with pytest.raises(failure):
            registry.register("alice", signatures())
        assert registry.subjects() == []
        assert registry.changes_since(0) == (0, [])
        assert registry.register("alice", [signature]) == (1, 0)  # and it still works


def test_file_that_is_not_a_registry_is_a_clear_error(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("shopping list: milk, eggs\n" * 100)
    with pytest.raises(RegistryError, match="not a usable counterfake registry"):
        Registry(path)


def test_directory_is_not_a_registry(tmp_path):
    with pytest.raises(RegistryError, match="is a directory"):
        Registry(tmp_path)


def test_unreachable_postgres_is_one_line_without_the_password():
    with pytest.raises(RegistryError) as caught:
        Registry("postgresql://alice:s3cret@127.0.0.1:1/registry")
    message = str(caught.value)
    assert "s3cret" not in message and "\n" not in message
    assert message.startswith("postgresql://alice:***@127.0.0.1:1/registry: ")


def test_db_path_defaults_to_environment_then_current_folder(monkeypatch):
    monkeypatch.setenv("COUNTERFAKE_DB", "/tmp/elsewhere.db")
    assert default_db_path() == "/tmp/elsewhere.db"
    monkeypatch.delenv("COUNTERFAKE_DB")
    assert default_db_path() == "counterfake.db"


def test_registry_from_a_newer_version_is_refused(registry_target):
    Registry(registry_target).close()
    with connect(registry_target) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(RegistryError, match="schema version 99 is not supported"):
        Registry(registry_target)


# ---- the change feed: two registries on one database stand for two workers -------------------


def test_second_worker_sees_a_registration_and_a_withdrawal(registry_target, signature):
    with Registry(registry_target) as helpline, Registry(registry_target) as worker:
        head = worker.head_seq()
        assert worker.wait_for_change(0.2) is False  # nothing yet; also starts listening

        helpline.register("alice", [signature])
        assert worker.wait_for_change(5) is True
        head, changes = worker.changes_since(head)
        [added] = changes
        assert added.action == "add" and worker.signature(added.photo_id).label == "photos/a.jpg"

        helpline.withdraw("alice")
        assert worker.wait_for_change(5) is True
        head, changes = worker.changes_since(head)
        assert changes == [Change(head, "remove", added.photo_id)]
        with pytest.raises(KeyError):
            worker.signature(added.photo_id)  # deleted, not hidden
        assert worker.changes_since(head) == (head, [])


def test_change_arrives_while_the_worker_waits(registry_target, signature):
    with Registry(registry_target) as helpline, Registry(registry_target) as worker:
        worker.wait_for_change(0.05)
        timer = threading.Timer(0.3, helpline.register, ("alice", [signature]))
        started = time.monotonic()
        timer.start()
        try:
            assert worker.wait_for_change(10) is True
        finally:
            timer.join()
        assert time.monotonic() - started < 5


def test_concurrent_writers_leave_no_gap_in_the_feed(registry_target, signature):
    """Change numbers commit in order, so a follower reading ``seq > last`` misses nothing."""
    seen: list[Change] = []
    with Registry(registry_target) as follower:
        last = follower.head_seq()

        def write(worker: int) -> None:
            with Registry(registry_target) as registry:
                for n in range(10):
                    registry.register(f"s{worker}", [copy_of(signature, 100 * worker + n)])

        writers = [threading.Thread(target=write, args=(w,)) for w in range(3)]
        for writer in writers:
            writer.start()
        while any(writer.is_alive() for writer in writers) or len(seen) < 30:
            last, changes = follower.changes_since(last)
            seen += changes
            if not changes:
                follower.wait_for_change(0.1)
        for writer in writers:
            writer.join()
    assert len(seen) == 30 and len({c.photo_id for c in seen}) == 30


def test_imported_pdq_hashes_are_stored_once_per_source(registry_target, signature):
    first = PdqRecord("f" * 64, 90, "case-1")
    second = PdqRecord("0" * 63 + "1", 70)
    with Registry(registry_target) as registry:
        registry.register("alice", [signature])
        assert registry.add_pdq_hashes([first, second], source="stopncii") == 2
        assert registry.add_pdq_hashes([first], source="stopncii") == 0
        assert registry.add_pdq_hashes([first], source="threatexchange") == 1
        rows = list(registry.pdq_hashes())
        _, changes = registry.changes_since(0)
    assert [row[0] for row in rows] == ["photo", "imported", "imported", "imported"]
    assert rows[0][2:] == (signature.pdq["original"].quality, signature.pdq["original"].hex())
    assert [c.action for c in changes] == ["add", "import", "import", "import"]


def test_a_hash_its_sharer_withdrew_is_deleted_and_followers_told(registry_target):
    live, gone = PdqRecord("a" * 64, None), PdqRecord("a" * 64, None, withdrawn=True)
    with Registry(registry_target) as registry, Registry(registry_target) as worker:
        registry.add_pdq_hashes([live], source="stopncii")
        registry.add_pdq_hashes([live], source="partner")
        head = worker.head_seq()
        assert registry.add_pdq_hashes([gone], source="stopncii") == 0
        assert [row[0] for row in registry.pdq_hashes()] == ["imported"]  # the partner's copy
        _, changes = worker.changes_since(head)
    [unimported] = changes
    assert unimported.action == "unimport" and worker_row_gone(registry_target, unimported)


def worker_row_gone(target: str, change: Change) -> bool:
    with Registry(target) as registry:
        return registry.imported_pdq(change.photo_id) is None


def test_a_long_hash_list_is_stored_in_batches_without_duplicates(registry_target):
    hashes = [f"{n:064x}" for n in range(1203)]
    records = [PdqRecord(h, 80) for h in hashes] + [PdqRecord(hashes[7], 80)]  # one twice
    records.insert(600, PdqRecord(hashes[3], None, withdrawn=True))  # after it, two batches on
    with Registry(registry_target) as registry:
        assert registry.add_pdq_hashes(records, source="list") == 1203
        stored = sorted(row[3] for row in registry.pdq_hashes())
        _, changes = registry.changes_since(0)
    assert stored == sorted(set(hashes) - {hashes[3]})
    actions = [c.action for c in changes]
    assert actions.count("import") == 1203 and actions.count("unimport") == 1
    assert actions.index("unimport") == 600  # in the file's order


def test_a_worker_reconnects_after_the_server_drops_its_connections(postgres_db, signature):
    with Registry(postgres_db) as worker:
        worker.wait_for_change(0.05)  # listening
        assert worker.subjects() == []
        with connect(postgres_db) as admin:  # what a restart or failover does to them
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        for call in (worker.subjects, lambda: worker.wait_for_change(0.05)):
            with pytest.raises(engine_errors()):
                call()  # the one call that meets the loss fails...
        assert worker.subjects() == []  # ...and the next ones reconnect
        assert worker.wait_for_change(0.05) is False
        with Registry(postgres_db) as helpline:
            helpline.register("alice", [signature])
        assert worker.wait_for_change(5) is True
        assert worker.subjects() == [("alice", 1)]
