"""The compact candidate index (index/compact.py): a noisy copy finds its photo first, a
mirrored copy is found through the scanned image's mirror features (or the indexed mirror in a
two-orientation layout), withdrawal is immediate, joined segments answer as before, and a
matcher over it finds a real photo's edited and mirrored copies."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest
from conftest import save
from test_index import noisy, signature

from counterfake.index.compact import CompactIndex
from counterfake.index.compact_layout import ORB_BITS, ROBUST_BITS, Layout, split_bits
from counterfake.matching import Matcher
from counterfake.registry import Registry
from counterfake.scan import Scanner
from counterfake.signature.extract import Signature, make_query, make_signature
from counterfake.signature.features import LocalFeatures


def copy_of(features: LocalFeatures, bits: int, rng: np.random.Generator) -> LocalFeatures:
    """A recompressed copy's features: the photo's with ``bits`` bits of each flipped."""
    return replace(features, descriptors=noisy(features.descriptors, bits, rng))


@pytest.fixture(scope="module")
def photos() -> dict[int, Signature]:
    rng = np.random.default_rng(11)
    return {photo_id: signature(rng) for photo_id in range(1, 301)}


def filled(photos: dict[int, Signature], layout: Layout | None = None) -> CompactIndex:
    index = CompactIndex(layout)
    for photo_id, sig in photos.items():
        index.add(photo_id, sig)
    return index


def test_words_and_signatures_are_the_layouts_bits_in_its_order():
    descriptor = np.zeros((1, 32), np.uint8)
    descriptor[0, ROBUST_BITS[0] // 8] |= 1 << ROBUST_BITS[0] % 8  # the word's first bit
    descriptor[0, ROBUST_BITS[21] // 8] |= 1 << ROBUST_BITS[21] % 8  # the signature's second
    word, bits = split_bits(descriptor, Layout())
    assert (int(word[0]), int(bits[0])) == (1, 2)
    word, bits = split_bits(descriptor, Layout(bits=ORB_BITS, signature_bits=64))
    assert bits.dtype == np.uint64 and word.dtype == np.uint32


def test_a_noisy_copy_finds_its_photo_first(photos):
    index = filled(photos)
    rng = np.random.default_rng(1)
    for photo_id in (1, 150, 300):
        scanned = copy_of(photos[photo_id].features, 10, rng)
        best = index.candidates(scanned, 5, copy_of(photos[7].mirrored, 0, rng))[0]
        assert (best.photo_id, best.mirrored) == (photo_id, False)


def test_a_mirrored_copy_is_found_through_the_scanned_mirror_image(photos):
    index = filled(photos)
    rng = np.random.default_rng(2)
    # a mirrored copy's mirror image is the photo itself again
    scanned, its_mirror = photos[9].mirrored, copy_of(photos[42].features, 10, rng)
    best = index.candidates(scanned, 5, its_mirror)[0]
    assert (best.photo_id, best.mirrored) == (42, True)
    assert all(c.photo_id != 42 for c in index.candidates(scanned, 5))  # not without it


def test_a_copy_two_word_bits_away_is_found_only_by_probing_two_bits_away(photos):
    flipped = photos[8].features.descriptors.copy()
    for bit in ROBUST_BITS[:2]:  # the word's first two bits, in every descriptor
        flipped[:, bit // 8] ^= np.uint8(1 << bit % 8)
    scanned = replace(photos[8].features, descriptors=flipped)
    assert all(c.photo_id != 8 for c in filled(photos).candidates(scanned, 10))
    best = filled(photos, Layout(probe_radius=2)).candidates(scanned, 10)[0]
    assert best.photo_id == 8


def test_two_orientations_find_a_mirrored_copy_without_the_mirror_image(photos):
    index = filled(photos, Layout(orientations=2))
    assert not index.queries_mirror
    rng = np.random.default_rng(3)
    best = index.candidates(copy_of(photos[42].mirrored, 10, rng), 5)[0]
    assert (best.photo_id, best.mirrored) == (42, True)


def test_withdrawal_is_immediate_and_a_photo_added_again_replaces_itself(photos):
    index = filled(photos)
    rng = np.random.default_rng(4)
    scanned = copy_of(photos[5].features, 10, rng)
    assert index.candidates(scanned, 1)[0].photo_id == 5
    index.remove(5)
    assert 5 not in index and len(index) == len(photos) - 1
    assert all(c.photo_id != 5 for c in index.candidates(scanned, 10))
    index.add(5, photos[6])  # photo 5 now shows what photo 6 shows
    index.add(5, photos[5])  # and is put back
    assert index.candidates(scanned, 1)[0].photo_id == 5
    assert len(index) == len(photos)


def test_segments_join_and_answer_as_one_index(photos):
    index = CompactIndex()
    rng = np.random.default_rng(5)
    for photo_id, sig in photos.items():  # a search after each batch: one segment each
        index.add(photo_id, sig)
        if photo_id % 50 == 0:
            index.candidates(photos[1].features, 1)
    index.remove(120)
    index.compact()
    assert len(index._segments) <= 3 and index.unsorted == 0
    for photo_id in (3, 77, 299):
        scanned = copy_of(photos[photo_id].features, 10, rng)
        assert index.candidates(scanned, 1)[0].photo_id == photo_id
    assert 120 not in index and len(index) == len(photos) - 1


def test_bounded_segments_answer_as_one_index(photos):
    """Settled every 20 photos and joined up to 80 (a ten-million-photo build's bounds, scaled
    down): the same candidates, with the same votes, as an index sorted all at once; a photo
    added again in a newer segment outlives its withdrawn older postings; a segment that lost
    most of its photos is rewritten without their postings."""
    per_photo = CompactIndex().layout.indexed
    bounded = CompactIndex(settle_postings=20 * per_photo, segment_postings=80 * per_photo)
    for photo_id, sig in photos.items():
        bounded.add(photo_id, sig)
    bounded.add(7, photos[7])
    for index in (bounded, whole := filled(photos)):
        index.remove(120)
        index.prepare()
    assert len(bounded._segments) >= 4
    assert all(len(s.owners) <= 80 * per_photo for s in bounded._segments)
    rng = np.random.default_rng(6)
    for photo_id in (3, 7, 77, 120, 299):
        scanned = copy_of(photos[photo_id].features, 10, rng)
        assert bounded.candidates(scanned, 10) == whole.candidates(scanned, 10)
    assert 7 in bounded and 120 not in bounded and len(bounded) == len(photos) - 1
    postings = sum(len(s.owners) for s in bounded._segments)
    for photo_id in range(1, 61):
        bounded.remove(photo_id)
    bounded.prepare()
    assert sum(len(s.owners) for s in bounded._segments) <= postings - 50 * per_photo
    assert len(bounded) == len(photos) - 61


def test_a_photo_id_beyond_the_layouts_range_is_refused(photos):
    with pytest.raises(ValueError, match="outside the index's range"):
        CompactIndex(Layout(orientations=2)).add(2**31, photos[1])
    with pytest.raises(ValueError, match="8, 16, 32 or 64"):
        Layout(signature_bits=24)


def test_a_matcher_over_it_finds_an_edited_and_a_mirrored_copy(photo, unrelated):
    sig = make_signature(photo, "p", "0" * 64)
    index = CompactIndex()
    index.add(1, sig)
    index.add(2, make_signature(unrelated, "u", "0" * 64))
    matcher = Matcher(index, {1: sig, 2: make_signature(unrelated, "u", "0" * 64)}.__getitem__)
    small = cv2.resize(photo, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA)
    for scanned in (small, np.ascontiguousarray(photo[:, ::-1])):
        found = matcher.match(make_query(scanned))
        assert [m.photo_id for m in found] == [1]


def test_a_scanner_with_the_compact_index_finds_a_mirrored_repost(tmp_path, photo):
    db = tmp_path / "r.db"
    with Registry(db) as registry:
        registry.register("someone", [make_signature(photo, "p", "0" * 64)])
    scanner = Scanner(db, index=CompactIndex())
    assert isinstance(scanner.index, CompactIndex) and len(scanner.index) == 1
    mirrored = save(tmp_path / "mirrored.jpg", np.ascontiguousarray(photo[:, ::-1]))
    [result] = scanner.scan([mirrored])
    assert [m.kind for m in result.matches] == ["repost"]
