"""The candidate index: the right photo and orientation come first, withdrawal is immediate,
photos added between searches are found, and the index still answers after a rebuild."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from counterfake.index import candidates
from counterfake.index.candidates import (
    CROWDED_ROWS,
    HASH_TABLES,
    INDEXED_FEATURES,
    KEY_BYTES,
    MAX_DISTANCE,
    MAX_PHOTO_ID,
    VOTING_FEATURES,
    CandidateIndex,
    _Additions,
    _key,
    _keys,
)
from counterfake.index.votes import merge_nearest, vote
from counterfake.signature.extract import Signature
from counterfake.signature.features import DESCRIPTOR_BYTES, LocalFeatures
from counterfake.signature.grid import GRID_CHANNELS, GRID_COLS, GRID_ROWS

SCANNED_FEATURES = 1000  # what a scanned image brings at most


def features(descriptors: np.ndarray) -> LocalFeatures:
    n = len(descriptors)
    return LocalFeatures(
        xy=np.zeros((n, 2), np.float32),
        size=np.full(n, 31, np.float32),
        angle=np.zeros(n, np.float32),
        octave=np.zeros(n, np.int8),
        descriptors=descriptors,
    )


def signature(rng: np.random.Generator, n: int = 300) -> Signature:
    def random_descriptors() -> np.ndarray:
        return rng.integers(0, 256, (n, DESCRIPTOR_BYTES), dtype=np.uint8)

    return Signature(
        label="x",
        sha256="0" * 64,
        width=512,
        height=512,
        frame_width=512,
        frame_height=512,
        pdq={},
        features=features(random_descriptors()),
        mirrored=features(random_descriptors()),
        grid=np.zeros((GRID_ROWS, GRID_COLS, GRID_CHANNELS), np.uint8),
        face=np.zeros(0, np.int32),
    )


def noisy(descriptors: np.ndarray, bits: int, rng: np.random.Generator) -> np.ndarray:
    """The descriptors with ``bits`` random bits flipped in each (a recompressed copy)."""
    unpacked = np.unpackbits(descriptors, axis=1)
    for row in unpacked:
        row[rng.choice(256, bits, replace=False)] ^= 1
    return np.packbits(unpacked, axis=1)


@pytest.fixture(scope="module")
def photos() -> dict[int, Signature]:
    rng = np.random.default_rng(5)
    return {photo_id: signature(rng) for photo_id in range(1, 201)}


@pytest.fixture(scope="module")
def index(photos) -> CandidateIndex:
    index = CandidateIndex()
    for photo_id, sig in photos.items():
        index.add(photo_id, sig)
    return index


def test_a_noisy_copy_ranks_its_photo_first(index, photos):
    rng = np.random.default_rng(1)
    query = noisy(photos[42].features.descriptors[:INDEXED_FEATURES], 12, rng)
    best, *rest = index.candidates(query, 5)
    assert (best.photo_id, best.mirrored) == (42, False)
    assert best.votes > 10 * max([c.votes for c in rest], default=0.01)


def test_a_mirrored_copy_names_the_mirrored_orientation(index, photos):
    """The index holds one orientation: a mirrored copy's own descriptors meet nothing, its
    mirror image's meet the photo's, and the candidate is the photo, mirrored."""
    rng = np.random.default_rng(2)
    own = rng.integers(0, 256, (SCANNED_FEATURES, DESCRIPTOR_BYTES), dtype=np.uint8)
    mirror = noisy(photos[7].features.descriptors[:INDEXED_FEATURES], 12, rng)
    assert index.candidates(own, 1) == []
    best = index.candidates(own, 1, mirror)[0]
    assert (best.photo_id, best.mirrored) == (7, True)


def test_unrelated_descriptors_get_no_candidates(index):
    rng = np.random.default_rng(3)
    query = rng.integers(0, 256, (SCANNED_FEATURES, DESCRIPTOR_BYTES), dtype=np.uint8)
    assert index.candidates(query, 10) == []


def test_only_near_descriptors_vote_and_nearer_ones_weigh_more(photos):
    index = CandidateIndex()
    index.add(1, photos[1])
    rng = np.random.default_rng(4)
    own = photos[1].features.descriptors[:50]
    # The first three bytes are kept, so every row is looked up; only the distance decides.
    near, far = noisy(own, 8, rng), noisy(own, MAX_DISTANCE + 20, rng)
    near[:, :3], far[:, :3] = own[:, :3], own[:, :3]
    assert index.candidates(far, 10) == []
    votes_near = index.candidates(near, 1)[0].votes
    votes_exact = index.candidates(own, 1)[0].votes
    exact_weight = ((MAX_DISTANCE + 1) / MAX_DISTANCE) ** 2
    assert 0 < votes_near < votes_exact == pytest.approx(50 * exact_weight)


def test_withdrawn_photo_is_dropped_at_once_and_can_return(photos):
    index = CandidateIndex()
    for photo_id in (1, 2, 3):
        index.add(photo_id, photos[photo_id])
    query = photos[2].features.descriptors
    assert index.candidates(query, 1)[0].photo_id == 2
    index.remove(2)
    assert 2 not in index and len(index) == 2
    assert all(c.photo_id != 2 for c in index.candidates(query, 10))
    index.add(2, photos[2])
    assert index.candidates(query, 1)[0].photo_id == 2


def test_photos_added_between_searches_give_the_same_answers(photos):
    at_once, bit_by_bit = CandidateIndex(), CandidateIndex()
    rng = np.random.default_rng(7)
    queries = [noisy(photos[i].features.descriptors[:100], 15, rng) for i in (3, 77, 150, 199)]
    for photo_id, sig in photos.items():
        at_once.add(photo_id, sig)
        bit_by_bit.add(photo_id, sig)
        if photo_id % 9 == 0:  # a search joins what was added so far
            bit_by_bit.candidates(queries[0], 1)
    for query in queries:
        assert bit_by_bit.candidates(query, 10) == at_once.candidates(query, 10)


def test_the_index_still_answers_after_withdrawals_force_a_rebuild(photos):
    index = CandidateIndex()
    for photo_id in range(1, 21):
        index.add(photo_id, photos[photo_id])
    for photo_id in range(1, 16):  # more than half the rows dead: the index is rebuilt
        index.remove(photo_id)
    assert len(index) == 5
    assert index.candidates(photos[18].features.descriptors, 1)[0].photo_id == 18
    assert index.candidates(photos[3].features.descriptors, 10) == []


def test_a_service_index_joins_its_segments_only_when_compacted(photos):
    """With merge_on_search=False a search only sorts the new additions into a small segment
    of their own; compact() joins segments, and no answer depends on how they are joined."""
    service = CandidateIndex(merge_on_search=False)
    batch = CandidateIndex()
    queries = [photos[photo_id].features.descriptors for photo_id in range(1, 13)]
    for photo_id in range(1, 13):
        service.add(photo_id, photos[photo_id])
        batch.add(photo_id, photos[photo_id])
        service.candidates(queries[0], 1)
        batch.candidates(queries[0], 1)
    assert len(service._segments) == 12
    assert len(batch._segments) < 12
    expected = [batch.candidates(query, 5) for query in queries]
    assert [service.candidates(query, 5) for query in queries] == expected
    service.compact()
    assert len(service._segments) == 1  # twelve equal segments: each join makes the next due
    assert [service.candidates(query, 5) for query in queries] == expected


def test_a_photo_withdrawn_or_replaced_while_segments_are_joined_stays_so(photos, monkeypatch):
    """compact() builds the joined segment outside the lock; a withdrawal and a replacement
    made meanwhile hold once the joined segment is in place."""
    index = CandidateIndex(merge_on_search=False)
    for photo_id in range(1, 5):
        index.add(photo_id, photos[photo_id])
        index.candidates(photos[1].features.descriptors, 1)
    build = candidates._joined

    def build_while_others_change_the_index(parts):
        joined = build(parts)
        if 2 in index:  # the first join only: the replacement makes the next join due
            index.remove(2)
            index.add(3, photos[50])
        return joined

    monkeypatch.setattr(candidates, "_joined", build_while_others_change_the_index)
    index.compact()
    monkeypatch.setattr(candidates, "_joined", build)
    assert len(index) == 3
    assert index.candidates(photos[2].features.descriptors, 10) == []
    assert [c.photo_id for c in index.candidates(photos[3].features.descriptors, 10)] == []
    assert index.candidates(photos[50].features.descriptors, 1)[0].photo_id == 3
    assert index.candidates(photos[4].features.descriptors, 1)[0].photo_id == 4


def test_a_compaction_overtaken_by_a_search_that_joined_the_same_segments_is_dropped(
    photos, monkeypatch
):
    index = CandidateIndex()  # merges on search too
    index.add(1, photos[1])
    index.candidates(photos[1].features.descriptors, 1)
    index.add(2, photos[2])
    index.prepare()  # two segments; adding a third photo makes a join due
    index.add(3, photos[3])
    build = candidates._joined

    def build_while_a_search_joins(parts):
        joined = build(parts)
        monkeypatch.setattr(candidates, "_joined", build)
        index.candidates(photos[1].features.descriptors, 1)
        return joined

    monkeypatch.setattr(candidates, "_joined", build_while_a_search_joins)
    index.compact()
    assert len(index._segments) == 1
    for photo_id in (1, 2, 3):
        hits = index.candidates(photos[photo_id].features.descriptors, 1)
        assert hits[0].photo_id == photo_id


def test_compaction_reclaims_withdrawn_rows_once_half_are_dead(photos):
    index = CandidateIndex(merge_on_search=False)
    for photo_id in range(1, 21):
        index.add(photo_id, photos[photo_id])
    index.compact()
    rows = sum(map(len, index._segments))
    for photo_id in range(1, 12):
        index.remove(photo_id)
    assert sum(map(len, index._segments)) == rows  # only marked dead: no search waits
    index.compact()
    assert sum(map(len, index._segments)) == rows * 9 // 20
    assert sum(s.dead for s in index._segments) == 0
    assert index.candidates(photos[15].features.descriptors, 1)[0].photo_id == 15


def test_empty_index_and_empty_query_give_no_candidates(photos):
    index = CandidateIndex()
    assert index.candidates(photos[1].features.descriptors, 10) == []
    index.add(1, photos[1])
    assert index.candidates(np.zeros((0, DESCRIPTOR_BYTES), np.uint8), 10) == []


def test_each_key_is_the_slice_the_compiled_search_reads():
    rng = np.random.default_rng(8)
    descriptors = rng.integers(0, 256, (50, DESCRIPTOR_BYTES), dtype=np.uint8)
    words = descriptors.view(np.uint64).reshape(-1, DESCRIPTOR_BYTES // 8)
    keys = _keys(descriptors)
    for table in range(HASH_TABLES):
        assert [_key(words, row, table) for row in range(50)] == list(keys[table])


def test_each_table_lists_a_segments_rows_by_bucket_and_in_row_order():
    """The counting sort files rows exactly as a stable sort of their buckets would."""
    rng = np.random.default_rng(10)
    additions = _Additions()
    for photo_id in range(40):  # rows repeat, so buckets hold several rows
        rows = rng.integers(0, 4, (int(rng.integers(1, 30)), DESCRIPTOR_BYTES), dtype=np.uint8)
        additions.add(photo_id, rows)
    segment = additions.segment()
    buckets = _keys(segment.codes) & segment.bucket_mask
    for table in range(HASH_TABLES):
        order = np.argsort(buckets[table], kind="stable")
        assert list(segment.rows[table]) == list(order)
        counts = np.bincount(buckets[table], minlength=len(segment.offsets[table]) - 1)
        assert list(segment.offsets[table]) == [0, *np.cumsum(counts)]


def test_added_photos_keep_their_rows_across_blocks(photos, monkeypatch):
    """Additions are packed into blocks; a withdrawn addition leaves no rows behind, and each
    row still names its photo, in the one orientation indexed."""
    monkeypatch.setattr(candidates, "_BLOCK_ROWS", 400)  # one photo (300 rows) per block
    additions = _Additions()
    for photo_id in (7, 8, 9):
        additions.add(photo_id, photos[photo_id].features.descriptors)
    assert len(additions._blocks) == 3
    assert additions.discard(8) and not additions.discard(8)
    segment = additions.segment()
    assert len(additions) == 0 and additions._blocks == []
    assert set(segment.spans) == {7, 9}
    for photo_id in (7, 9):
        rows = segment.spans[photo_id]
        sig = photos[photo_id]
        assert np.array_equal(segment.codes[rows.start : rows.stop], sig.features.descriptors)
        owners = segment.owners[rows.start : rows.stop]
        assert list(owners) == [photo_id * 2] * len(sig.features)


def test_a_photo_id_beyond_the_owner_range_is_refused(photos):
    index = CandidateIndex()
    index.add(MAX_PHOTO_ID, photos[1])
    with pytest.raises(ValueError, match="outside the index's range"):
        index.add(MAX_PHOTO_ID + 1, photos[1])
    with pytest.raises(ValueError, match="outside the index's range"):
        index.add(-1, photos[1])
    hits = index.candidates(photos[1].features.descriptors, 1)
    assert (hits[0].photo_id, hits[0].mirrored) == (MAX_PHOTO_ID, False)


def test_clutter_near_many_photos_does_not_bury_a_small_copy():
    """A phone interface or watermark text is near rows of many photos; only each scanned
    descriptor's nearest rows vote, so a few dozen close descriptors of the right photo win."""
    rng = np.random.default_rng(9)
    clutter = rng.integers(0, 256, (500, DESCRIPTOR_BYTES), dtype=np.uint8)
    index = CandidateIndex()
    crowd = {photo_id: signature(rng) for photo_id in range(1, 41)}
    for photo_id, sig in crowd.items():  # every crowd photo holds a noisy copy of the clutter
        descriptors = sig.features.descriptors.copy()
        descriptors[:250] = noisy(clutter[:250] if photo_id % 2 else clutter[250:500], 20, rng)
        index.add(photo_id, replace(sig, features=features(descriptors)))
    target = signature(rng)
    index.add(99, target)
    query = np.concatenate([clutter, noisy(target.features.descriptors[:40], 6, rng)])
    assert len(query) <= VOTING_FEATURES  # all of it votes
    best = index.candidates(query, 1)[0]
    assert (best.photo_id, best.mirrored) == (99, False)


def only_first_key_kept(descriptors: np.ndarray) -> np.ndarray:
    """The descriptors with one bit flipped in every slice but the first: each is 9 bits from
    its original and can be found only through the first table's key."""
    flipped = descriptors.copy()
    for table in range(1, HASH_TABLES):
        flipped[:, table * KEY_BYTES] ^= 1
    return flipped


def crowded_index(crowd: int, skip_crowded_keys: bool) -> tuple[CandidateIndex, np.ndarray]:
    """An index in which ``crowd`` photos share a scanned descriptor's first key but are far
    from it, and photo 999 is near it but found only through that key; and the descriptor."""
    rng = np.random.default_rng(10)
    query = rng.integers(0, 256, (1, DESCRIPTOR_BYTES), dtype=np.uint8)
    index = CandidateIndex(skip_crowded_keys=skip_crowded_keys)
    for photo_id in range(1, crowd + 1):
        crowder = signature(rng, n=1)
        crowder.features.descriptors[:, :KEY_BYTES] = query[:, :KEY_BYTES]
        index.add(photo_id, crowder)
    target = signature(rng, n=1)
    target.features.descriptors[:] = only_first_key_kept(query)
    index.add(999, target)
    return index, query


@pytest.mark.parametrize("crowd", [CROWDED_ROWS // 2, CROWDED_ROWS + 10])
def test_a_key_shared_by_a_crowd_of_rows_is_passed_over(crowd):
    """A row found only through a bucket crowded with other photos' rows does not vote; the
    same row in a bucket of ordinary size does."""
    index, query = crowded_index(crowd, skip_crowded_keys=True)
    found = [c.photo_id for c in index.candidates(query, 10)]
    assert found == ([] if crowd > CROWDED_ROWS else [999])


def test_an_index_of_a_collection_reads_crowded_keys_in_full():
    index, query = crowded_index(CROWDED_ROWS + 10, skip_crowded_keys=False)
    assert [c.photo_id for c in index.candidates(query, 10)] == [999]


def test_a_hundred_copies_of_one_photo_find_each_other_in_a_collection(photos):
    """A channel export may hold a hundred copies of one photo, which crowd all of its keys;
    a collection's index must still find copies, and only copies."""
    index = CandidateIndex(skip_crowded_keys=False)
    for photo_id in range(1, 2 * CROWDED_ROWS):
        index.add(photo_id, photos[1] if photo_id % 10 else photos[photo_id // 10 + 2])
    rng = np.random.default_rng(12)
    query = noisy(photos[1].features.descriptors[:INDEXED_FEATURES], 12, rng)
    found = index.candidates(query, 3)
    assert found and all(c.photo_id % 10 and not c.mirrored for c in found)


def test_an_index_split_by_photo_merges_to_the_answer_of_one_index():
    """Shards (cluster/) each keep their nearest rows; the nearest of theirs, voted once, are
    the candidates of one index over every photo, ties included: descriptors drawn from a few
    shared ones lie equally near rows of many photos. (Which keys are crowded depends on each
    segment's rows, so crowded keys are read here: see docs/cluster.md.)"""
    rng = np.random.default_rng(4)
    common = rng.integers(0, 256, (60, DESCRIPTOR_BYTES), dtype=np.uint8)
    whole = CandidateIndex(skip_crowded_keys=False)
    parts = [CandidateIndex(skip_crowded_keys=False) for _ in range(3)]
    for photo_id in range(1, 61):
        sig = signature(rng)
        descriptors = sig.features.descriptors.copy()
        descriptors[:100] = noisy(common[rng.integers(0, 60, 100)], 8, rng)
        sig = replace(sig, features=features(descriptors))
        whole.add(photo_id, sig)
        parts[photo_id % 3].add(photo_id, sig)
    ties = 0
    for _ in range(20):
        query = noisy(common[rng.integers(0, 60, 300)], 8, rng)
        owner, distance = whole.nearest(query)
        ties += int(np.sum(distance[:, 0] == distance[:, 1]))
        merged = merge_nearest(query, [part.nearest(query) for part in parts])
        assert np.array_equal(merged[0], owner) and np.array_equal(merged[1], distance)
        assert vote(*merged, 10) == whole.candidates(query, 10)
    assert ties > 100  # the order of equally near rows was put to the test
