"""The packed candidate index (index/packed.py): a worker starts from it, and from the registry
whenever the file is missing, stale or damaged, with one line saying which file and why.

Every test checks answers, not files: a worker started from the packed file must match exactly
as one that indexed the registry, and follow the change feed from where the file stands.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from conftest import jpeg
from test_index import signature as random_signature

from counterfake import loading
from counterfake.index import packed as packed_module
from counterfake.index.compact import CompactIndex, Layout
from counterfake.index.owners import SharedEntries
from counterfake.index.packed import (
    INDEX_KINDS,
    PackedIndexError,
    index_arrays,
    read_packed,
    read_stamp,
)
from counterfake.index.packed_compact import CompactArrays
from counterfake.loading import index_registry, load_candidates
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


@pytest.fixture(params=INDEX_KINDS)
def kind(request) -> str:
    """Each index the packed file holds: the multi-index hash and the compact index."""
    return request.param


@contextmanager
def worker(
    target: str, packed: Path | None, kind: str = "hash", **options: float
) -> Iterator[MatchingEngine]:
    engine = MatchingEngine(
        Registry(target), packed=None if packed is None else str(packed), index_kind=kind, **options
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
    registry_file, tmp_path, signatures, caplog, kind
):
    packed = tmp_path / "registry.index"
    with worker(registry_file, None, kind=kind) as indexed:
        expected = answers(indexed, signatures)
        entries = indexed.entries.entries
    assert {"alice", "copy", "reencode"} <= set(expected["alice"])  # one entry, every owner
    assert entries == 3  # the photo's, the crop's, the other photo's
    caplog.clear()
    with caplog.at_level(logging.WARNING), worker(registry_file, packed, kind=kind):
        pass  # it writes the file
    assert [r.getMessage() for r in caplog.records] == [
        f"packed index {packed}: not there yet; {REBUILT}"
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING), worker(registry_file, packed, kind=kind) as loaded:
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
    registry_file, tmp_path, signatures, caplog, how, problem, kind
):
    packed = tmp_path / "registry.index"
    with worker(registry_file, packed, kind=kind) as first:
        expected = answers(first, signatures)
    damaged(packed, how)
    caplog.clear()
    with caplog.at_level(logging.WARNING), worker(registry_file, packed, kind=kind) as rebuilt:
        assert answers(rebuilt, signatures) == expected
    (message,) = [r.getMessage() for r in caplog.records]
    assert message.startswith(f"packed index {packed}: ") and problem in message
    assert message.endswith(REBUILT) and "\n" not in message
    assert read_stamp(packed, kind).seq == Registry(registry_file).head_seq()  # written anew
    read_packed(packed, kind=kind)  # and whole


def test_the_checksum_covers_every_array(registry_file, tmp_path, kind):
    """A byte changed anywhere among the arrays, not only where one test happens to hit."""
    packed = tmp_path / "registry.index"
    with worker(registry_file, packed, kind=kind):
        pass
    pristine = packed.read_bytes()
    rng = np.random.default_rng(7)
    for offset in rng.integers(8, len(pristine) - 200, 12):
        data = bytearray(pristine)
        data[offset] ^= 0x01
        packed.write_bytes(bytes(data))
        with pytest.raises(PackedIndexError):
            read_packed(packed, kind=kind)


def test_a_file_written_for_another_registry_or_ahead_of_it_is_stale(
    registry_file, tmp_path, signatures, caplog, kind
):
    packed = tmp_path / "registry.index"
    with worker(registry_file, packed, kind=kind):
        pass
    other = str(tmp_path / "other.db")  # the same subjects registered anew: same ids, same seq
    with Registry(other) as registry:
        for subject, signature in signatures.items():
            registry.register(subject, [signature])
    caplog.clear()
    with caplog.at_level(logging.WARNING), worker(other, packed, kind=kind):
        pass
    assert caplog.records[0].getMessage() == (
        f"packed index {packed}: written for another registry; {REBUILT}"
    )
    caplog.clear()
    older = tmp_path / "older.db"  # the registry as a backup held it, before the last change
    with Registry(str(older)) as registry:
        for subject, signature in list(signatures.items())[:-1]:
            registry.register(subject, [signature])
    with worker(registry_file, packed, kind=kind):  # the file is the newer registry's again
        pass
    with Registry(str(older)) as registry, Registry(registry_file) as newer:
        registry.identity()  # given an id, then the newer one's, as a restored copy has
        registry.db.execute(
            "UPDATE meta SET value = ? WHERE key = 'registry_id'", (newer.identity(),)
        )
    caplog.clear()
    with caplog.at_level(logging.WARNING), worker(str(older), packed, kind=kind) as restored:
        assert "other" not in subjects(restored, signatures["other"])
    (message,) = [r.getMessage() for r in caplog.records]
    assert "holds changes up to" in message and message.endswith(REBUILT)


def test_a_file_behind_the_registry_is_used_and_the_changes_since_are_applied(
    registry_file, tmp_path, signatures, photo, caplog, kind
):
    """Registrations and withdrawals made after the file was written: the worker reads the file,
    then the feed; nothing is rebuilt, and a withdrawn owner's entry keeps its other owners."""
    packed = tmp_path / "registry.index"
    with worker(registry_file, packed, kind=kind):
        pass
    later = make_signature(photo[:, 40:], "later.jpg", "5" * 64)
    reencoded = make_signature(jpeg(photo, 90), "q90.jpg", "6" * 64)
    with Registry(registry_file) as registry:
        registry.register("later", [later])
        registry.withdraw("alice")  # the owner the shared entry is filed under
        registry.withdraw("other")
        registry.register("reencoded", [reencoded])  # joins the entry read from the file
    caplog.clear()
    with caplog.at_level(logging.WARNING), worker(registry_file, packed, kind=kind) as engine:
        assert caplog.records == []
        assert engine.entries.entries == 3  # the photo's (copies and re-encodes), 2 crops
        found = subjects(engine, signatures["alice"])
        assert "alice" not in found and {"copy", "reencode", "reencoded", "later"} <= set(found)
        assert "later" in subjects(engine, later)
        assert subjects(engine, signatures["other"]) == []


@pytest.mark.usefixtures("registry_target")
def test_changes_reach_a_worker_started_from_the_file_within_a_second(
    registry_target, tmp_path, signatures, photo, kind
):
    """On SQLite and PostgreSQL: a registration is matchable, and a withdrawal of one owner
    leaves the others matching, at the first match after it is committed."""
    with Registry(registry_target) as registry:
        registry.register("alice", [signatures["alice"]])
        registry.register("copy", [signatures["copy"]])
    packed = tmp_path / "registry.index"
    with worker(registry_target, packed, kind=kind):
        pass
    with worker(registry_target, packed, kind=kind) as engine:
        engine.start()
        crop = signatures["crop"]
        with Registry(registry_target) as other_worker:
            other_worker.register("crop", [crop])
        assert "crop" in subjects(engine, crop)
        with Registry(registry_target) as other_worker:
            other_worker.withdraw("alice")
        assert subjects(engine, signatures["alice"]) == ["copy", "crop"]


def test_the_feed_thread_writes_the_file_again_once_the_registry_has_changed(
    registry_file, tmp_path, signatures, photo, caplog, kind
):
    packed = tmp_path / "registry.index"
    later = make_signature(photo[:, 40:], "later.jpg", "5" * 64)
    with worker(registry_file, packed, repack_seconds=0.0, feed_wait=0.05, kind=kind) as engine:
        engine.start()
        before = read_stamp(packed, kind).seq
        with Registry(registry_file) as registry:
            registry.register("later", [later])
            registry.withdraw("copy")
        head = Registry(registry_file).head_seq()
        deadline = 100
        while read_stamp(packed, kind).seq != head and deadline:
            engine._stop.wait(0.1)
            deadline -= 1
        assert before < read_stamp(packed, kind).seq == head
    caplog.clear()
    with caplog.at_level(logging.WARNING), worker(registry_file, packed, kind=kind) as restarted:
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
    registry_file, tmp_path, signatures, photo, monkeypatch, kind
):
    """The file's stamp is read first; a registration that lands while the arrays are read is
    after that stamp, so the first match applies it from the feed."""
    packed = tmp_path / "registry.index"
    with worker(registry_file, packed, kind=kind):
        pass
    later = make_signature(photo[:, 40:], "later.jpg", "5" * 64)
    monkeypatch.setattr(
        loading, "read_packed", registering_first(loading.read_packed, registry_file, later)
    )
    with worker(registry_file, packed, kind=kind) as engine:
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
    registry_file, tmp_path, photo, monkeypatch, kind
):
    """The file holds the index as of one change; a registration committed while it is being
    written is after its stamp, so a worker started from it applies that registration."""
    packed = tmp_path / "registry.index"
    later = make_signature(photo[:, 40:], "later.jpg", "5" * 64)
    write_while_registering = registering_first(loading.write_packed, registry_file, later)

    with worker(registry_file, None, kind=kind) as first, Registry(registry_file) as registry:
        first.packed = str(packed)
        registry.withdraw("other")
        first.sync()
        monkeypatch.setattr(loading, "write_packed", write_while_registering)
        assert first.repack()
    monkeypatch.undo()
    assert read_stamp(packed, kind).seq < Registry(registry_file).head_seq()
    with worker(registry_file, packed, kind=kind) as restarted:
        assert "later" in subjects(restarted, later)
        assert len(restarted) == 5  # five registered at first, less "other", plus "later"


@pytest.mark.parametrize(("written", "wanted"), [("hash", "compact"), ("compact", "hash")])
def test_a_file_holding_the_other_index_is_rebuilt_as_the_one_asked_for(
    registry_file, tmp_path, signatures, caplog, written, wanted
):
    packed = tmp_path / "registry.index"
    with worker(registry_file, packed, kind=written) as first:
        expected = answers(first, signatures)
    caplog.clear()
    with caplog.at_level(logging.WARNING), worker(registry_file, packed, kind=wanted) as rebuilt:
        assert answers(rebuilt, signatures) == expected
    names = {"hash": "the multi-index hash", "compact": "the compact index"}
    assert [r.getMessage() for r in caplog.records] == [
        f"packed index {packed}: holds {names[written]}, not {names[wanted]}; {REBUILT}"
    ]
    assert isinstance(read_packed(packed, kind=wanted).index, type(rebuilt.index))  # rewritten
    with pytest.raises(PackedIndexError, match=f"holds {names[wanted]}"):
        read_stamp(packed, written)


def listed_arrays(packed: Path) -> dict[str, tuple[int, int]]:
    """Each array's (offset, length in bytes), as the file's header lists them."""
    data = packed.read_bytes()
    length, _, _ = packed_module._TRAILER.unpack(data[-packed_module._TRAILER.size :])
    header = json.loads(data[-packed_module._TRAILER.size - length : -packed_module._TRAILER.size])
    return {
        name: (offset, int(np.prod(shape)) * np.dtype(kind).itemsize)
        for name, kind, shape, offset, _ in header["arrays"]
    }


@pytest.mark.parametrize("array", ["segment0.signatures", "segment0.offsets", "entries.pdq"])
def test_a_damaged_array_of_the_compact_index_is_named_with_its_file_and_rebuilt(
    registry_file, tmp_path, signatures, caplog, array
):
    packed = tmp_path / "registry.index"
    with worker(registry_file, packed, kind="compact") as first:
        expected = answers(first, signatures)
    offset, length = listed_arrays(packed)[array]
    data = bytearray(packed.read_bytes())
    data[offset + length // 2] ^= 0x10
    packed.write_bytes(bytes(data))
    caplog.clear()
    with caplog.at_level(logging.WARNING), worker(registry_file, packed, kind="compact") as again:
        assert answers(again, signatures) == expected
    assert [r.getMessage() for r in caplog.records] == [
        f"packed index {packed}: its {array} fails its checksum (the file is damaged); {REBUILT}"
    ]
    read_packed(packed, kind="compact")  # written anew, whole


def packed_compact_index(
    registry_file: str, packed: Path, index: CompactIndex, alter: Callable[[list], None]
) -> None:
    """Write ``index`` filled from the registry to ``packed``, its segments' arrays changed by
    ``alter`` first (checksummed as written: what a bug, not damage, would leave)."""
    with Registry(registry_file) as registry:
        entries = index_registry(registry, index)
        segments = index.segment_arrays()
        alter(segments)
        seq = registry.head_seq()
        loading.pack(registry, packed, seq, CompactArrays(index.layout, segments), entries.arrays())


def test_a_compact_file_of_another_layout_is_stale(registry_file, tmp_path, signatures, caplog):
    packed = tmp_path / "registry.index"
    packed_compact_index(registry_file, packed, CompactIndex(Layout(signature_bits=16)), list)
    caplog.clear()
    with caplog.at_level(logging.WARNING), worker(registry_file, packed, kind="compact") as again:
        assert len(again) == len(signatures)
    (message,) = [r.getMessage() for r in caplog.records]
    assert "another index layout" in message and message.endswith(REBUILT)


def cut_offsets(segments: list) -> None:
    segments[0]["offsets"] = segments[0]["offsets"].copy()
    segments[0]["offsets"][-1] += 1  # one posting more than the segment holds


def unsorted_photos(segments: list) -> None:
    segments[0]["photos"] = segments[0]["photos"][::-1].copy()


@pytest.mark.parametrize("alter", [cut_offsets, unsorted_photos])
def test_compact_arrays_that_do_not_fit_together_are_refused_before_a_search_reads_them(
    registry_file, tmp_path, signatures, caplog, alter
):
    packed = tmp_path / "registry.index"
    packed_compact_index(registry_file, packed, CompactIndex(), alter)
    caplog.clear()
    with caplog.at_level(logging.WARNING), worker(registry_file, packed, kind="compact") as again:
        assert "alice" in subjects(again, signatures["alice"])
    (message,) = [r.getMessage() for r in caplog.records]
    assert "its arrays do not fit together" in message and message.endswith(REBUILT)


def test_the_compact_index_reads_back_with_its_segments_and_withdrawals(tmp_path):
    """Same candidates after reload: several segments, a withdrawn photo, mirrored queries."""
    rng = np.random.default_rng(3)
    photos = {photo_id: random_signature(rng) for photo_id in range(1, 61)}
    index = CompactIndex()
    for photo_id, held in photos.items():
        index.add(photo_id, held)
        if photo_id in (40, 50):
            index.prepare()  # a segment of the first 40, then one of 10, then the rest pending
    index.remove(7)
    packed = tmp_path / "compact.index"
    stamp = packed_module.Stamp("registry", 1, "change")
    no_entries = SharedEntries(index).arrays()  # the index alone: its owners are tested above
    assert packed_module.write_packed(packed, stamp, index_arrays(index), no_entries)
    back = read_packed(packed, kind="compact")
    assert isinstance(back.index, CompactIndex) and back.stamp == stamp
    assert len(back.index.segment_arrays()) == len(index.segment_arrays()) > 1
    assert 7 not in back.index and len(back.index) == len(index) == 59
    for photo_id in (1, 7, 45, 60):
        query = photos[photo_id]
        asked = (query.features, 10, query.mirrored)
        assert back.index.candidates(*asked) == index.candidates(*asked)
    assert back.index.candidates(photos[45].features, 1)[0].photo_id == 45
