"""The packed candidate index (index/packed.py): a worker starts from it, and from the registry
whenever the file is missing, stale or damaged, with one line saying which file and why.

Every test checks answers, not files: a worker started from the packed file must match exactly
as one that indexed the registry, and follow the change feed from where the file stands.
"""

from __future__ import annotations

import dataclasses
import fcntl
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from conftest import jpeg

from counterfake import loading
from counterfake.index import packed as packed_module
from counterfake.index.packed import PackedIndexError, read_packed, read_stamp
from counterfake.loading import load_candidates
from counterfake.registry import Registry
from counterfake.service.engine import MatchingEngine
from counterfake.signature.extract import Signature, make_signature

REBUILT = "indexing the registry instead"


@pytest.fixture(scope="module")
def photo_signature(photo) -> Signature:
    return make_signature(photo, "photo.jpg", "f" * 64)


@pytest.fixture(scope="module")
def signatures(photo, unrelated, photo_signature) -> dict[str, Signature]:
    """A photo, an exact copy and a re-encode of it (one entry, three owners), a crop of it and
    an unrelated photo (entries of their own)."""
    return {
        "alice": photo_signature,
        "copy": dataclasses.replace(photo_signature, label="copy.jpg", sha256="1" * 64),
        "reencode": make_signature(jpeg(photo, 85), "q85.jpg", "2" * 64),
        "crop": make_signature(photo[60:], "crop.jpg", "3" * 64),
        "other": make_signature(unrelated, "other.jpg", "4" * 64),
    }


@pytest.fixture
def registry_file(tmp_path, signatures) -> str:
    target = str(tmp_path / "registry.db")
    with Registry(target) as registry:
        for subject, signature in signatures.items():
            registry.register(subject, [signature])
    return target


@contextmanager
def worker(target: str, packed: Path | None, **options: float) -> Iterator[MatchingEngine]:
    engine = MatchingEngine(
        Registry(target), packed=None if packed is None else str(packed), **options
    )
    try:
        yield engine
    finally:
        engine.stop()
        engine.registry.close()


def subjects(engine: MatchingEngine, query: Signature) -> list[str]:
    return sorted(found.photo.subject for found in engine.match_signature(query)[1])


def answers(engine: MatchingEngine, signatures: dict[str, Signature]) -> dict[str, list[str]]:
    return {name: subjects(engine, signature) for name, signature in signatures.items()}


def test_a_worker_started_from_the_packed_file_answers_as_one_that_indexed_the_registry(
    registry_file, tmp_path, signatures, caplog
):
    packed = tmp_path / "registry.index"
    with worker(registry_file, None) as indexed:
        expected = answers(indexed, signatures)
        entries = indexed.entries.entries
    assert {"alice", "copy", "reencode"} <= set(expected["alice"])  # one entry, every owner
    assert entries == 3  # the photo's, the crop's, the other photo's
    caplog.clear()
    with caplog.at_level(logging.WARNING), worker(registry_file, packed):  # writes the file
        pass
    assert [r.getMessage() for r in caplog.records] == [
        f"packed index {packed}: not there yet; {REBUILT}"
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING), worker(registry_file, packed) as loaded:
        assert answers(loaded, signatures) == expected
        assert loaded.entries.entries == entries and len(loaded) == len(signatures)
        assert loaded.index.unsorted == 0
    assert caplog.records == []  # read from the file, nothing rebuilt


def damaged(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncated":
        del data[len(data) // 2 :]
    elif how == "flipped byte":
        data[len(data) // 3] ^= 0x40
    elif how == "no trailer":
        del data[-3:]
    elif how == "not an index":
        data[:8] = b"PK\x03\x04zip!"
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("how", "problem"),
    [
        ("truncated", "cut short"),
        ("no trailer", "cut short"),
        ("flipped byte", "fails its checksum (the file is damaged)"),
        ("not an index", "not a packed counterfake index"),
    ],
)
def test_a_damaged_packed_file_is_named_in_one_line_and_rebuilt_from_the_registry(
    registry_file, tmp_path, signatures, caplog, how, problem
):
    packed = tmp_path / "registry.index"
    with worker(registry_file, packed) as first:
        expected = answers(first, signatures)
    damaged(packed, how)
    caplog.clear()
    with caplog.at_level(logging.WARNING), worker(registry_file, packed) as rebuilt:
        assert answers(rebuilt, signatures) == expected
    (message,) = [r.getMessage() for r in caplog.records]
    assert message.startswith(f"packed index {packed}: ") and problem in message
    assert message.endswith(REBUILT) and "\n" not in message
    assert read_stamp(packed).seq == Registry(registry_file).head_seq()  # written anew
    read_packed(packed)  # and whole


def test_the_checksum_covers_every_array(registry_file, tmp_path):
    """A byte changed anywhere among the arrays, not only where one test happens to hit."""
    packed = tmp_path / "registry.index"
    with worker(registry_file, packed):
        pass
    pristine = packed.read_bytes()
    rng = np.random.default_rng(7)
    for offset in rng.integers(8, len(pristine) - 200, 12):
        data = bytearray(pristine)
        data[offset] ^= 0x01
        packed.write_bytes(bytes(data))
        with pytest.raises(PackedIndexError):
            read_packed(packed)


def test_a_file_written_for_another_registry_or_ahead_of_it_is_stale(
    registry_file, tmp_path, signatures, caplog
):
    packed = tmp_path / "registry.index"
    with worker(registry_file, packed):
        pass
    other = str(tmp_path / "other.db")  # the same subjects registered anew: same ids, same seq
    with Registry(other) as registry:
        for subject, signature in signatures.items():
            registry.register(subject, [signature])
    caplog.clear()
    with caplog.at_level(logging.WARNING), worker(other, packed):
        pass
    assert caplog.records[0].getMessage() == (
        f"packed index {packed}: written for another registry; {REBUILT}"
    )
    caplog.clear()
    older = tmp_path / "older.db"  # the registry as a backup held it, before the last change
    with Registry(str(older)) as registry:
        for subject, signature in list(signatures.items())[:-1]:
            registry.register(subject, [signature])
    with worker(registry_file, packed):  # the file is the newer registry's again
        pass
    with Registry(str(older)) as registry, Registry(registry_file) as newer:
        registry.identity()  # given an id, then the newer one's, as a restored copy has
        registry.db.execute(
            "UPDATE meta SET value = ? WHERE key = 'registry_id'", (newer.identity(),)
        )
    caplog.clear()
    with caplog.at_level(logging.WARNING), worker(str(older), packed) as restored:
        assert "other" not in subjects(restored, signatures["other"])
    (message,) = [r.getMessage() for r in caplog.records]
    assert "holds changes up to" in message and message.endswith(REBUILT)


def test_a_file_behind_the_registry_is_used_and_the_changes_since_are_applied(
    registry_file, tmp_path, signatures, photo, caplog
):
    """Registrations and withdrawals made after the file was written: the worker reads the file,
    then the feed; nothing is rebuilt, and a withdrawn owner's entry keeps its other owners."""
    packed = tmp_path / "registry.index"
    with worker(registry_file, packed):
        pass
    later = make_signature(photo[:, 40:], "later.jpg", "5" * 64)
    reencoded = make_signature(jpeg(photo, 90), "q90.jpg", "6" * 64)
    with Registry(registry_file) as registry:
        registry.register("later", [later])
        registry.withdraw("alice")  # the owner the shared entry is filed under
        registry.withdraw("other")
        registry.register("reencoded", [reencoded])  # joins the entry read from the file
    caplog.clear()
    with caplog.at_level(logging.WARNING), worker(registry_file, packed) as engine:
        assert caplog.records == []
        assert engine.entries.entries == 3  # the photo's (copies and re-encodes), 2 crops
        found = subjects(engine, signatures["alice"])
        assert "alice" not in found and {"copy", "reencode", "reencoded", "later"} <= set(found)
        assert "later" in subjects(engine, later)
        assert subjects(engine, signatures["other"]) == []


@pytest.mark.usefixtures("registry_target")
def test_changes_reach_a_worker_started_from_the_file_within_a_second(
    registry_target, tmp_path, signatures, photo
):
    """On SQLite and PostgreSQL: a registration is matchable, and a withdrawal of one owner
    leaves the others matching, at the first match after it is committed."""
    with Registry(registry_target) as registry:
        registry.register("alice", [signatures["alice"]])
        registry.register("copy", [signatures["copy"]])
    packed = tmp_path / "registry.index"
    with worker(registry_target, packed):
        pass
    with worker(registry_target, packed) as engine:
        engine.start()
        crop = signatures["crop"]
        with Registry(registry_target) as other_worker:
            other_worker.register("crop", [crop])
        assert "crop" in subjects(engine, crop)
        with Registry(registry_target) as other_worker:
            other_worker.withdraw("alice")
        assert subjects(engine, signatures["alice"]) == ["copy", "crop"]


def test_the_feed_thread_writes_the_file_again_once_the_registry_has_changed(
    registry_file, tmp_path, signatures, photo, caplog
):
    packed = tmp_path / "registry.index"
    later = make_signature(photo[:, 40:], "later.jpg", "5" * 64)
    with worker(registry_file, packed, repack_seconds=0.0, feed_wait=0.05) as engine:
        engine.start()
        before = read_stamp(packed).seq
        with Registry(registry_file) as registry:
            registry.register("later", [later])
            registry.withdraw("copy")
        head = Registry(registry_file).head_seq()
        deadline = 100
        while read_stamp(packed).seq != head and deadline:
            engine._stop.wait(0.1)
            deadline -= 1
        assert before < read_stamp(packed).seq == head
    caplog.clear()
    with caplog.at_level(logging.WARNING), worker(registry_file, packed) as restarted:
        assert restarted._seq == head  # nothing left to apply from the feed
        assert "later" in subjects(restarted, later)
        found = subjects(restarted, signatures["alice"])
        assert "copy" not in found and {"alice", "reencode", "later"} <= set(found)
    assert caplog.records == []


def registering_first(step, registry_file, signature):
    """``step`` that first registers ``signature`` for "later": a change landing mid-step."""

    def registering_then_step(*args, **kwargs):
        with Registry(registry_file) as registry:
            registry.register("later", [signature])
        return step(*args, **kwargs)

    return registering_then_step


def test_a_change_committed_while_a_worker_loads_the_file_is_applied(
    registry_file, tmp_path, signatures, photo, monkeypatch
):
    """The file's stamp is read first; a registration that lands while the arrays are read is
    after that stamp, so the first match applies it from the feed."""
    packed = tmp_path / "registry.index"
    with worker(registry_file, packed):
        pass
    later = make_signature(photo[:, 40:], "later.jpg", "5" * 64)
    monkeypatch.setattr(
        loading, "read_packed", registering_first(loading.read_packed, registry_file, later)
    )
    with worker(registry_file, packed) as engine:
        assert "later" in subjects(engine, later)


def test_a_writer_holding_the_lock_makes_another_skip_its_turn(registry_file, tmp_path):
    packed = tmp_path / "registry.index"
    with open(f"{packed}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with worker(registry_file, packed):
            pass
        assert not packed.exists()  # the other writer's turn: nothing half-written either
    with worker(registry_file, packed):
        pass
    assert read_stamp(packed).seq == Registry(registry_file).head_seq()


def test_a_registry_without_the_file_loads_as_before(registry_file, signatures):
    loaded = load_candidates(Registry(registry_file), None)
    assert len(loaded.entries) == len(signatures)


def test_a_file_written_with_another_index_layout_is_stale(
    registry_file, tmp_path, signatures, caplog, monkeypatch
):
    packed = tmp_path / "registry.index"
    with worker(registry_file, packed):
        pass
    monkeypatch.setattr(packed_module, "LAYOUT", {**packed_module.LAYOUT, "indexed_features": 64})
    caplog.clear()
    with caplog.at_level(logging.WARNING), worker(registry_file, packed) as rebuilt:
        assert len(rebuilt) == len(signatures)
    (message,) = [r.getMessage() for r in caplog.records]
    assert "another index layout" in message and message.endswith(REBUILT)


def test_a_file_of_the_two_orientation_index_is_rebuilt_not_misread(
    registry_file, tmp_path, signatures, caplog, monkeypatch
):
    """Before the compact signature (issue 18) the index held each photo's mirror image too,
    as odd owners: such a file must not be read as one orientation's."""
    packed = tmp_path / "registry.index"
    old = {k: v for k, v in packed_module.LAYOUT.items() if k != "orientations_indexed"}
    with monkeypatch.context() as patched:
        patched.setattr(packed_module, "LAYOUT", old)
        with worker(registry_file, packed):
            pass
    caplog.clear()
    with caplog.at_level(logging.WARNING), worker(registry_file, packed) as rebuilt:
        assert len(rebuilt) == len(signatures)
    (message,) = [r.getMessage() for r in caplog.records]
    assert "another index layout" in message and message.endswith(REBUILT)


def test_a_change_committed_while_the_file_is_written_is_not_lost(
    registry_file, tmp_path, photo, monkeypatch
):
    """The file holds the index as of one change; a registration committed while it is being
    written is after its stamp, so a worker started from it applies that registration."""
    packed = tmp_path / "registry.index"
    later = make_signature(photo[:, 40:], "later.jpg", "5" * 64)
    write_while_registering = registering_first(loading.write_packed, registry_file, later)

    with worker(registry_file, None) as first, Registry(registry_file) as registry:
        first.packed = str(packed)
        registry.withdraw("other")
        first.sync()
        monkeypatch.setattr(loading, "write_packed", write_while_registering)
        assert first.repack()
    monkeypatch.undo()
    assert read_stamp(packed).seq < Registry(registry_file).head_seq()
    with worker(registry_file, packed) as restarted:
        assert "later" in subjects(restarted, later)
        assert len(restarted) == 5  # five registered at first, less "other", plus "later"
