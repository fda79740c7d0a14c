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


def test_a_started_worker_joins_the_segments_that_matches_leave(registry_target, photo_signature):
    """Each match sorts the registrations it applies into a small segment of its own and never
    waits for segments to be joined; the feed thread joins them, and the answer is the same."""
    with worker(registry_target) as engine:
        for i in range(6):
            with Registry(registry_target) as other_worker:
                copy = dataclasses.replace(photo_signature, sha256=f"{i:064x}")
                other_worker.register(f"s{i}", [copy])
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
