"""The matching engine of one worker, in process, over a real registry (SQLite and PostgreSQL).

A worker must hold only its indexes and a bounded cache of signatures, whatever the registry's
size, and must never report (nor fail on) a photo withdrawn behind its back before its feed
caught up.
"""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from conftest import jpeg
from service_support import eventually

from counterfake.exchange import PdqRecord
from counterfake.registry import Registry
from counterfake.service.engine import SIGNATURE_CACHE, MatchingEngine
from counterfake.signature.extract import Signature, make_signature


@pytest.fixture(scope="module")
def photo_signature(photo) -> Signature:
    return make_signature(photo, "photo.jpg", "f" * 64)


@contextmanager
def worker(registry_target: str) -> Iterator[MatchingEngine]:
    """A worker's engine loaded from the registry; its connection is closed afterwards."""
    engine = MatchingEngine(Registry(registry_target))
    try:
        yield engine
    finally:
        engine.registry.close()


def live_signatures() -> int:
    gc.collect()
    return sum(isinstance(thing, Signature) for thing in gc.get_objects())


def test_a_loaded_worker_keeps_no_signature_of_its_registered_photos(
    registry_target, photo_signature
):
    with Registry(registry_target) as registry:
        registry.register(
            "many",
            (dataclasses.replace(photo_signature, sha256=f"{i:064x}") for i in range(40)),
        )
    held_before = live_signatures()
    with worker(registry_target) as engine:
        assert len(engine) == 40
        assert live_signatures() == held_before  # the index keeps descriptors, not signatures
        _, found = engine.match_signature(photo_signature)
        assert found
        cached = live_signatures() - held_before
        assert 0 < cached <= min(SIGNATURE_CACHE, 40)  # only the verified candidates


def test_a_loaded_worker_has_sorted_its_index_before_its_first_match(
    registry_target, photo_signature
):
    with Registry(registry_target) as registry:
        registry.register("alice", [photo_signature])
    with worker(registry_target) as engine:
        assert len(engine) == 1
        assert engine.index.unsorted == 0  # a large registry's sort must not fall in a request


def test_a_worker_started_on_a_filled_registry_matches_and_looks_up_what_it_holds(
    registry_target, photo_signature, unrelated
):
    imported = make_signature(unrelated, "other.jpg", "e" * 64).pdq["original"].hex()
    with Registry(registry_target) as registry:
        registry.register("alice", [photo_signature])
        registry.add_pdq_hashes([PdqRecord(imported, 90, "t-1")], source="partner")
    with worker(registry_target) as engine:
        _, found = engine.match_signature(photo_signature)
        assert [(f.photo.subject, f.photo.label) for f in found] == [("alice", "photo.jpg")]
        own = engine.lookup_pdq(photo_signature.pdq["original"].hex(), 31)
        assert [key for key, _ in own] == [f"photo:{found[0].photo.photo_id}"]
        assert [key.split(":")[0] for key, _ in engine.lookup_pdq(imported, 31)] == ["imported"]


def test_a_registration_by_another_worker_is_matched_by_the_next_request_before_the_feed(
    registry_target, photo_signature
):
    with worker(registry_target) as engine:  # never started: no feed thread follows
        assert engine.match_signature(photo_signature)[1] == []
        with Registry(registry_target) as other_worker:
            other_worker.register("alice", [photo_signature])
        _, found = engine.match_signature(photo_signature)
        assert [f.photo.subject for f in found] == ["alice"]
        assert len(engine) == 1


def test_a_withdrawal_by_another_worker_stops_the_next_match_before_the_feed(
    registry_target, photo_signature
):
    with Registry(registry_target) as registry:
        registry.register("alice", [photo_signature])
    with worker(registry_target) as engine:
        assert engine.match_signature(photo_signature)[1]
        with Registry(registry_target) as other_worker:
            assert other_worker.withdraw("alice") == 1
        assert engine.match_signature(photo_signature)[1] == []
        assert len(engine) == 0


@pytest.mark.parametrize("cached", [True, False], ids=["cached", "read-from-registry"])
def test_a_photo_withdrawn_while_its_match_is_verified_is_neither_reported_nor_an_error(
    registry_target, photo_signature, cached
):
    """The withdrawal commits after the match read the feed: the index still holds the photo."""
    with Registry(registry_target) as registry:
        registry.register("alice", [photo_signature])
    with worker(registry_target) as engine:
        if cached:
            assert engine.match_signature(photo_signature)[1]
        read_signature = engine._matcher.signature_of

        def withdraw_then_read(photo_id: int) -> Signature:
            with Registry(registry_target) as other_worker:
                other_worker.withdraw("alice")
            return read_signature(photo_id)

        engine._matcher.signature_of = withdraw_then_read
        assert engine.match_signature(photo_signature)[1] == []
        assert len(engine) == 1  # the feed has not caught up: only the registry knows
        engine.sync()
        assert len(engine) == 0


def test_a_started_worker_joins_the_segments_that_matches_leave(
    registry_target, photo, photo_signature
):
    """Each match sorts the registrations it applies into a small segment of its own and never
    waits for segments to be joined; the feed thread joins them, and the answer is the same."""
    with worker(registry_target) as engine:
        for i in range(6):
            with Registry(registry_target) as other_worker:
                crop = make_signature(photo[20 * i :], f"crop-{i}.jpg", f"{i:064x}")
                other_worker.register(f"s{i}", [crop])  # each a picture of its own
            assert engine.match_signature(photo_signature)[1]
        assert len(engine.index._segments) == 6
        before = [f.photo.photo_id for f in engine.match_signature(photo_signature)[1]]
        engine.start()
        try:
            assert eventually(lambda: len(engine.index._segments) == 1, 30)
        finally:
            engine.stop()
        assert len(engine) == 6
        assert [f.photo.photo_id for f in engine.match_signature(photo_signature)[1]] == before


def copies(signature: Signature, count: int, first: int = 0) -> list[Signature]:
    """The same signature under other labels and file hashes, as a mass registration sends."""
    return [
        dataclasses.replace(signature, label=f"copy-{n}.jpg", sha256=f"{first + n:064x}")
        for n in range(count)
    ]


def test_a_photo_registered_many_times_by_others_still_reaches_every_subject_holding_it(
    registry_target, photo_signature
):
    """One registrar's 150 copies of a photo neither hide another's registration of it nor
    take 150 places in the candidate index: they are one entry with every owner."""
    with Registry(registry_target) as registry:
        registry.register("helpB/one", copies(photo_signature, 100, 1000))
        for n in range(50):
            registry.register(f"helpB/many-{n}", copies(photo_signature, 1, 2000 + n))
        registry.register("helpA/alice", [photo_signature])
    with worker(registry_target) as engine:
        assert len(engine) == 151 and engine.entries.entries == 1
        _, found = engine.match_signature(photo_signature)
        subjects = [f.photo.subject for f in found]
        assert len(found) == 151 and "helpA/alice" in subjects
        assert len({f.photo.photo_id for f in found}) == 151
        assert {f.match.kind for f in found} == {"repost"}


def test_near_identical_registrations_share_an_entry_and_withdrawing_its_first_owner_keeps_the_rest(
    registry_target, photo
):
    """Re-encodes of one photo (another JPEG quality) are verified as the same picture and join
    one entry; when the owner it is filed under withdraws, the others keep matching."""
    signatures = [
        make_signature(jpeg(photo, quality), f"q{quality}.jpg", f"{quality:064x}")
        for quality in range(70, 100, 3)
    ]
    with Registry(registry_target) as registry:
        registry.register("helpA/alice", signatures[:1])
        for n, signature in enumerate(signatures[1:]):
            registry.register(f"helpB/s{n}", [signature])
    with worker(registry_target) as engine:
        assert len(engine) == len(signatures) and engine.entries.entries == 1
        query = make_signature(jpeg(photo, 80), "upload.jpg", "0" * 64)
        found = engine.match_signature(query)[1]
        assert len(found) == len(signatures)
        with Registry(registry_target) as other_worker:
            other_worker.withdraw("helpA/alice")
        found = engine.match_signature(query)[1]
        assert sorted(f.photo.subject for f in found) == sorted(
            f"helpB/s{n}" for n in range(len(signatures) - 1)
        )
        assert engine.entries.entries == 1 and len(engine) == len(signatures) - 1


def test_a_different_crop_or_another_photo_is_never_an_owner_of_an_entry(
    registry_target, photo, unrelated, photo_signature
):
    with Registry(registry_target) as registry:
        registry.register("helpA/alice", [photo_signature])
        registry.register("helpB/crop", [make_signature(photo[60:], "crop.jpg", "1" * 64)])
        registry.register("helpB/other", [make_signature(unrelated, "u.jpg", "2" * 64)])
    with worker(registry_target) as engine:
        assert engine.entries.entries == 3
        unrelated_query = make_signature(unrelated, "q.jpg", "3" * 64)
        found = engine.match_signature(unrelated_query)[1]
        assert [f.photo.subject for f in found] == ["helpB/other"]
