"""The index split over a real two-node Ray cluster answers as one machine does."""

from __future__ import annotations

import time

import cv2
import pytest
from cluster_support import edited, people_photo, register_people, unregistered

from counterfake.cluster.shards import ShardedIndex
from counterfake.index.candidates import CandidateIndex
from counterfake.loading import index_registry
from counterfake.matching import Matcher
from counterfake.registry import Registry
from counterfake.service.engine import MatchingEngine, load_indexes
from counterfake.signature.extract import make_query, make_signature

REGISTERED = range(1, 31)


@pytest.fixture(scope="module")
def registry_db(tmp_path_factory) -> str:
    db = str(tmp_path_factory.mktemp("cluster") / "registry.db")
    register_people(db, REGISTERED)
    return db


def queries() -> list:
    derived = [edited(n, how) for n in (2, 9, 17) for how in ("blurred", "recompressed", "crop")]
    return [make_query(rgb) for rgb in derived + [unregistered(n) for n in (5, 300, 470)]]


def answers(matcher: Matcher, query) -> list[tuple[int, str]]:
    return [(match.photo_id, match.kind) for match in matcher.match(query)]


def test_sharded_candidates_and_matches_equal_one_machines_on_real_photos(ray_cluster, registry_db):
    import ray

    with Registry(registry_db) as registry:
        for skip_crowded_keys in (False, True):
            one = CandidateIndex(skip_crowded_keys=skip_crowded_keys)
            sharded = ShardedIndex(ray, registry_db, 4, skip_crowded_keys=skip_crowded_keys)
            assert len(set(sharded.placement())) == 2  # both nodes hold shards
            index_registry(registry, one)
            index_registry(registry, sharded)
            alone = Matcher(one, registry.signature)
            spread = Matcher(sharded, registry.signature)
            for query in queries():
                descriptors = query.features.descriptors
                if not skip_crowded_keys:  # crowded keys are per shard: docs/cluster.md
                    assert sharded.candidates(descriptors, 10) == one.candidates(descriptors, 10)
                assert answers(spread, query) == answers(alone, query)
            found = {photo for query in queries()[:9] for photo, _ in answers(spread, query)}
            assert found == {2, 9, 17}


def test_registration_and_withdrawal_reach_the_shards_within_a_second(ray_cluster, tmp_path):
    import ray

    db = str(tmp_path / "registry.db")
    register_people(db, range(40, 46))
    with Registry(db) as registry:
        engine = MatchingEngine(
            registry, loaded=load_indexes(registry, index=ShardedIndex(ray, db, 3)), feed_wait=0.2
        )
        engine.start()
        try:
            newcomer = make_signature(people_photo(50), "people/0050.jpg", "5" * 64)
            upload = cv2.imencode(".jpg", edited(50, "blurred")[:, :, ::-1])[1].tobytes()
            with Registry(db) as other_worker:
                other_worker.register("bob", [newcomer])
            assert _within(1.0, lambda: _labels(engine, upload) == ["people/0050.jpg"])
            with Registry(db) as other_worker:
                other_worker.withdraw("bob")
            assert _within(1.0, lambda: _labels(engine, upload) == [])
        finally:
            engine.stop()


def test_a_node_added_takes_shards_over_and_answers_stay_the_same(ray_cluster, registry_db):
    import ray

    with Registry(registry_db) as registry:
        one, sharded = CandidateIndex(), ShardedIndex(ray, registry_db, 4)
        index_registry(registry, one)
        index_registry(registry, sharded)
        before = set(sharded.placement())
        node = ray_cluster.add_node()
        try:
            sharded.compact()  # the service's feed thread calls it every loop
            after = sharded.placement()
            assert len(set(after)) == 3 and set(after) - before == {node.node_id}
            assert not sharded.rebalance()  # 2, 1, 1: balanced
            alone, spread = Matcher(one, registry.signature), Matcher(sharded, registry.signature)
            for query in queries():
                assert answers(spread, query) == answers(alone, query)
        finally:
            ray_cluster.cluster.remove_node(node)
        query = make_query(edited(9, "blurred"))  # its shard is started again elsewhere
        assert answers(spread, query) == answers(alone, query)
        assert node.node_id not in sharded.placement()


def _labels(engine: MatchingEngine, upload: bytes) -> list[str]:
    return [found.photo.label for found in engine.match_image(upload, "upload.jpg")[1]]


def _within(seconds: float, condition) -> bool:
    """Whether ``condition()`` holds within ``seconds`` (it is not waited on past them)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False
