"""The compact candidate index: an inverted file over bit-sampled words, with Hamming embedding.

The multi-index hash (candidates.py) keeps every indexed descriptor whole: about 40 kB a photo,
so one machine holds some hundreds of thousands of photos, not the ten million the design asks
for. This index keeps a few bytes per indexed feature instead (Jégou, Douze & Schmid, "Hamming
embedding and weak geometric consistency for large scale image search", ECCV 2008):

- **Words.** A descriptor's *word* is ``word_bits`` of its bits, at fixed positions: those that
  edits flip least among those that split descriptors evenly and are little correlated with each
  other (ROBUST_BITS, measured on the shared photos by bench/index_bits.py). A copy reaches its
  photo's list only when at most one of the word's bits flipped, so the bits that flip least
  matter most: ORB's own first 20 bits flipped in 17% of edited feature pairs there, these in
  13%. The vocabulary is the positions: there is nothing to train, store or ship.
- **Postings.** Each of a photo's first ``indexed`` spread-ordered descriptors is a posting in
  its word's list: the photo's id (4 bytes), a *signature* of ``signature_bits`` further bits
  (the Hamming embedding) and one byte of geometry (orientation and scale, quantised).
  ``orientations=1`` indexes the photo as registered and the scanned image's mirror image is
  queried too; ``orientations=2`` indexes the photo's mirror image as well, at half the features
  each, so a scan extracts features once.
- **Query.** Each scanned descriptor reads its word's list and the lists one bit away (multiple
  assignment: a copy's descriptor differs from the photo's in 10-20% of its bits, and one of the
  word's bits flipped is the commonest way its word changes); a posting votes when its signature
  is within ``max_distance`` bits, weighted by how close, once per scanned descriptor and photo.
- **Weak geometric consistency.** A copy turns and scales all its features alike, so a photo's
  votes are binned by the difference in orientation and in scale, and its score is the smaller
  of its fullest run of three orientation bins and its fullest run of three scale bins. Chance
  agreements spread over the bins.

Lists longer than max(CROWDED_ROWS, CROWDED_MULTIPLE x the average) are passed over (stop
words), as candidates.py passes over crowded keys; ``skip_crowded_keys=False`` reads them (a
collection searched for pairs may hold a hundred copies of one photo).

**Layout.** Postings live in immutable segments, each sorted by word with an offset per word.
Photos added since the last search are sorted into a new small segment at the next search, or
as soon as they hold ``settle_postings``; two neighbouring segments are joined when the newer
has grown to half the older (a log-structured merge) and the two together stay within
``segment_postings``, and a segment is rewritten alone once half its photos are withdrawn. A
withdrawn photo is dead at once and its postings are dropped when its segment is rewritten.
The bounds keep the memory a build needs beside the index to one segment's worth: at ten
million photos the postings take about 11.6 GB, and joining everything into one segment (the
joined copy beside its parts) would not fit a 24 GB machine. A join merges its parts' sorted
lists word by word into the new segment's arrays, without sorting them again. The code follows
branch ``issue18``'s inverted file, with the words' bits chosen for surviving edits, a query
side that votes with its mirror image, and the layout a parameter so that bench/index_recall.py
can measure each one.

It is an option (``scan --index compact``, ``serve --index compact``), not the default: it finds
fewer of the most heavily edited derivatives than the multi-index hash; docs/index.md has both.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numba
import numpy as np

from counterfake.index import candidates
from counterfake.index.compact_layout import ANGLE_BINS, SCALE_BINS, Layout, geometry, split_bits
from counterfake.index.compact_segments import Segment, SegmentArrays, joined
from counterfake.index.votes import CandidateSource, Proposer
from counterfake.signature import hamming
from counterfake.signature.extract import Signature
from counterfake.signature.features import LocalFeatures

SETTLE_POSTINGS = 1 << 24  # postings added (about 130,000 photos) sorted into a segment at once
SEGMENT_POSTINGS = 1 << 28  # at most this many in a joined segment: about 2.1 million photos
_REBUILD_DEAD_SHARE = 0.5


@dataclass(frozen=True)
class Candidate:
    photo_id: int
    mirrored: bool
    votes: float  # distance-weighted, geometrically consistent


class _Postings:
    """Postings added since the last search, as parallel arrays that grow by doubling."""

    _FIELDS = ("words", "owners", "signatures", "geometry")

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.words = np.zeros(0, np.uint32)
        self.owners = np.zeros(0, np.uint32)
        self.signatures = np.zeros(0, layout.signature_dtype)
        self.geometry = np.zeros(0, np.uint8)
        self.size = 0
        self.photos: set[int] = set()

    def append(self, photo_id: int, signature: Signature) -> None:
        layout = self.layout
        per_side = layout.indexed // layout.orientations
        sides = [signature.features, signature.mirrored][: layout.orientations]
        for side, features in enumerate(sides):
            kept = features.descriptors[:per_side]
            count, start = len(kept), self.size
            self._reserve(count)
            word, bits = split_bits(kept, layout)
            self.words[start : start + count] = word
            self.owners[start : start + count] = photo_id * layout.orientations + side
            self.signatures[start : start + count] = bits
            self.geometry[start : start + count] = geometry(features)[:count]
            self.size += count
        self.photos.add(photo_id)

    def _reserve(self, count: int) -> None:
        if self.size + count <= len(self.words):
            return
        capacity = max(1024, 2 * (self.size + count))
        for name in self._FIELDS:
            old = getattr(self, name)
            grown = np.empty(capacity, old.dtype)
            grown[: self.size] = old[: self.size]
            setattr(self, name, grown)

    def discard(self, photo_id: int) -> None:
        """Drop a photo's postings (one added again before the next search, or withdrawn)."""
        if photo_id not in self.photos:
            return
        self.photos.discard(photo_id)
        keep = self.owners[: self.size] // self.layout.orientations != photo_id
        for name in self._FIELDS:
            array = getattr(self, name)
            kept = array[: self.size][keep]
            array[: len(kept)] = kept
        self.size = int(keep.sum())


class CompactIndex:
    """An in-process inverted file over registered photos' features; safe to share between
    threads. It answers as :class:`~counterfake.index.candidates.CandidateIndex` does, from
    the scanned image's features (and its mirror image's, for a one-orientation layout)."""

    def __init__(
        self,
        layout: Layout | None = None,
        *,
        skip_crowded_keys: bool = True,
        merge_on_search: bool = True,
        settle_postings: int = SETTLE_POSTINGS,
        segment_postings: int = SEGMENT_POSTINGS,
    ) -> None:
        self.layout = layout or Layout()
        self.skip_crowded_keys = skip_crowded_keys
        self.merge_on_search = merge_on_search
        self.settle_postings = settle_postings
        self.segment_postings = segment_postings
        self._lock = threading.Lock()
        self._compacting = threading.Lock()
        self._segments: list[Segment] = []
        self._pending = _Postings(self.layout)

    @property
    def queries_mirror(self) -> bool:
        """Whether a search needs the scanned image's mirror image's features too."""
        return self.layout.orientations == 1

    def __len__(self) -> int:
        return sum(map(len, self._segments)) + len(self._pending.photos)

    def __contains__(self, photo_id: int) -> bool:
        return photo_id in self._pending.photos or any(s.holds(photo_id) for s in self._segments)

    @property
    def unsorted(self) -> int:
        """Photos added since the last search: the next search sorts them first."""
        return len(self._pending.photos)

    @property
    def nbytes(self) -> int:
        """Memory held by the searchable arrays (what a registry of this size costs)."""
        self.prepare()
        return sum(s.nbytes for s in self._segments)

    def prepare(self) -> None:
        """Sort what was added into the searchable arrays now rather than at the next search."""
        with self._compacting, self._lock:
            self._settle()
            self._join_due()

    def compact(self) -> None:
        """Join segments as :meth:`_due` asks, each joined segment built outside the lock."""
        with self._compacting:
            while True:
                with self._lock:
                    self._settle()
                    run = self._due()
                    dead = [set(s.dead) for s in run]
                if not run:
                    return
                merged = joined(self.layout, run)
                with self._lock:
                    self._replace(run, merged, dead)

    def add(self, photo_id: int, signature: Signature) -> None:
        """Index a photo's features; re-adding an indexed photo replaces it."""
        if not 0 <= photo_id <= self.layout.max_photo_id:
            limit = self.layout.max_photo_id
            raise ValueError(f"photo id {photo_id} is outside the index's range 0..{limit}")
        with self._lock:
            self._forget(photo_id)
            self._pending.append(photo_id, signature)
            if self._pending.size >= self.settle_postings:
                self._settle()

    def remove(self, photo_id: int) -> None:
        """Stop answering with this photo, at once."""
        with self._lock:
            self._forget(photo_id)

    def segment_arrays(self) -> list[SegmentArrays]:
        """The index as it answers now, as arrays (photos added since the last search sorted in
        first): the segments' own, read-only, and a copy of what is withdrawn."""
        names = ("photos", "offsets", "owners", "signatures", "geometry")
        with self._lock:
            self._settle()
            taken = [(s, np.array(sorted(s.dead), np.uint32)) for s in self._segments]
        return [{name: getattr(s, name) for name in names} | {"dead": d} for s, d in taken]

    @classmethod
    def from_segment_arrays(
        cls, layout: Layout, parts: list[SegmentArrays], **options: bool
    ) -> CompactIndex:
        """An index answering as the one ``segment_arrays`` was taken from, with ``layout``
        (``options`` as for the constructor)."""
        index = cls(layout, **options)
        index._segments = [Segment.from_arrays(index.layout, part) for part in parts]
        return index

    def candidates(
        self, features: LocalFeatures, limit: int, mirrored: LocalFeatures | None = None
    ) -> list[Candidate]:
        """The ``limit`` (photo, orientation) pairs with the most consistent votes, best first.

        ``mirrored``: the features of the scanned image's mirror image; a photo they find is a
        candidate in its mirrored orientation (ignored when both orientations are indexed).
        """
        layout = self.layout
        sides = [features]
        if mirrored is not None and self.queries_mirror:
            sides.append(mirrored)
        with self._lock:
            self._settle()
            if self.merge_on_search:
                self._join_due()
            segments = list(self._segments)
        found = []
        for side, side_features in enumerate(sides):
            kept = side_features.descriptors[: layout.query_features]
            if len(kept) == 0:
                continue
            words, signatures = split_bits(kept, layout)
            query_geometry = geometry(side_features)[: len(kept)]
            for segment in segments:
                crowded = segment.crowded if self.skip_crowded_keys else len(segment.owners)
                query, posting, distance = _scan(
                    words,
                    signatures.astype(np.uint64),
                    segment.offsets,
                    segment.signatures,
                    layout.max_distance,
                    crowded,
                    _probes(layout.word_bits, layout.probe_radius),
                )
                owners = segment.owners[posting].astype(np.int64)
                if segment.dead:
                    dead = np.fromiter(segment.dead, np.int64, len(segment.dead))
                    alive = ~np.isin(owners // layout.orientations, dead)
                    query, posting, distance = query[alive], posting[alive], distance[alive]
                    owners = owners[alive]
                # a key names (photo, mirrored): the mirror side's votes are for the mirrored copy
                keys = owners if layout.orientations == 2 else owners * 2 + side
                found.append(
                    (
                        query + side * layout.query_features,
                        keys,
                        distance,
                        query_geometry[query],
                        segment.geometry[posting],
                    )
                )
        return _vote(found, layout, limit)

    def _settle(self) -> None:
        """Sort the photos added since the last search into a segment of their own."""
        pending = self._pending
        if not pending.photos:
            return
        size = pending.size
        self._segments.append(
            Segment(
                self.layout,
                np.array(sorted(pending.photos), np.uint32),
                pending.words[:size],
                pending.owners[:size],
                pending.signatures[:size],
                pending.geometry[:size],
            )
        )
        self._pending = _Postings(self.layout)

    def _due(self) -> list[Segment]:
        """The segments to join now: one that lost half its photos, alone; otherwise the newest
        neighbours of which the newer has grown to half the older, if together they stay
        within ``segment_postings`` (a log-structured merge with a largest size)."""
        segments = self._segments
        for segment in segments:
            if len(segment.dead) > _REBUILD_DEAD_SHARE * max(1, len(segment.photos)):
                return [segment]
        for older, newer in reversed(list(itertools.pairwise(segments))):
            size = len(older.owners) + len(newer.owners)
            if 2 * len(newer.owners) >= len(older.owners) and size <= self.segment_postings:
                return [older, newer]
        return []

    def _join_due(self) -> None:
        while run := self._due():
            self._replace(run, joined(self.layout, run), [set(s.dead) for s in run])

    def _replace(self, run: list[Segment], merged: Segment, dead: list[set[int]]) -> None:
        """Put ``merged`` in place of ``run``; photos withdrawn meanwhile stay dead."""
        if not all(any(s is r for s in self._segments) for r in run):
            return
        first = next(i for i, s in enumerate(self._segments) if s is run[0])
        self._segments = [s for s in self._segments if all(s is not r for r in run)]
        for segment, before in zip(run, dead, strict=True):
            merged.dead |= segment.dead - before
        if len(merged.photos):
            self._segments.insert(first, merged)

    def _forget(self, photo_id: int) -> None:
        self._pending.discard(photo_id)
        for segment in self._segments:
            if segment.holds(photo_id):
                segment.dead.add(photo_id)


AnyIndex = CandidateSource | CompactIndex  # what index/owners.py fills
AnyProposer = Proposer | CompactIndex  # what a matcher asks


def shortlist(
    index: AnyProposer, features: LocalFeatures, limit: int, mirror: Callable[[], LocalFeatures]
) -> list[Candidate] | list[candidates.Candidate]:
    """What either index proposes for a scanned image, best first; ``mirror`` makes the
    features of its mirror image, which a one-orientation index asks for."""
    if isinstance(index, CompactIndex):
        return index.candidates(features, limit, mirror() if index.queries_mirror else None)
    return index.candidates(features.descriptors, limit, mirror().descriptors)


def _vote(found: list[tuple], layout: Layout, limit: int) -> list[Candidate]:
    """Each (photo, orientation)'s votes: one per scanned descriptor (its nearest posting of
    that photo), weighted by distance, binned by orientation and scale difference."""
    if not found:
        return []
    query, key, distance, query_geometry, posting_geometry = (
        np.concatenate([part[i] for part in found]) for i in range(5)
    )
    if len(key) == 0:
        return []
    order = np.lexsort((distance, key, query))
    query, key, distance = query[order], key[order], distance[order]
    first = np.ones(len(key), bool)
    first[1:] = (query[1:] != query[:-1]) | (key[1:] != key[:-1])
    key, distance = key[first], distance[first]
    ours = query_geometry[order][first].astype(np.int64)
    theirs = posting_geometry[order][first].astype(np.int64)
    weight = (layout.max_distance + 2 - distance) / (layout.max_distance + 2)
    angle = ((ours & 15) - (theirs & 15)) % ANGLE_BINS
    scale = (ours >> 4) - (theirs >> 4) + SCALE_BINS - 1
    voted, slot = np.unique(key, return_inverse=True)
    scale_bins = 2 * SCALE_BINS - 1
    by_angle = np.bincount(slot * ANGLE_BINS + angle, weight, len(voted) * ANGLE_BINS)
    by_scale = np.bincount(slot * scale_bins + scale, weight, len(voted) * scale_bins)
    votes = np.minimum(
        _peak(by_angle.reshape(-1, ANGLE_BINS), wrap=True),
        _peak(by_scale.reshape(-1, scale_bins), wrap=False),
    )
    best = np.argsort(-votes, kind="stable")[:limit]
    return [Candidate(int(voted[i]) // 2, bool(voted[i] % 2), float(votes[i])) for i in best]


def _peak(histograms: np.ndarray, *, wrap: bool) -> np.ndarray:
    """Each row's fullest run of three neighbouring bins (a copy's differences straddle a bin
    edge as often as not); orientation bins wrap around."""
    before = np.roll(histograms, 1, axis=1)
    after = np.roll(histograms, -1, axis=1)
    if not wrap:
        before[:, 0] = 0
        after[:, -1] = 0
    return (before + histograms + after).max(axis=1)


def _probes(word_bits: int, radius: int) -> np.ndarray:
    """The masks a scanned word is flipped by to reach every list within ``radius`` bits, and
    how many bits each flips: nearest first."""
    masks = [(0, 0)]
    masks += [(1 << a, 1) for a in range(word_bits)] if radius >= 1 else []
    pairs = [(1 << a | 1 << b, 2) for a in range(word_bits) for b in range(a + 1, word_bits)]
    masks += pairs if radius >= 2 else []
    return np.array(masks, np.uint32).reshape(-1, 2)


@numba.njit(cache=True, nogil=True)
def _scan(
    words, signatures, offsets, posting_signatures, max_distance, crowded, probes
):  # pragma: no cover - compiled
    """(scanned descriptor, posting, distance) of every posting within ``max_distance`` of
    signature in a list ``probes`` reaches; a list a bits away adds a to the distance."""
    capacity = 4096
    query = np.empty(capacity, np.int64)
    posting = np.empty(capacity, np.int64)
    distance = np.empty(capacity, np.int64)
    count = 0
    for q in range(words.shape[0]):
        for p in range(probes.shape[0]):
            word = words[q] ^ probes[p, 0]
            start, stop = offsets[word], offsets[word + 1]
            if stop - start > crowded:
                continue
            for i in range(start, stop):
                d = hamming.popcount(np.uint64(posting_signatures[i]) ^ signatures[q])
                if d > max_distance:
                    continue
                if count == capacity:
                    capacity *= 2
                    query = np.concatenate((query, np.empty(capacity - count, np.int64)))
                    posting = np.concatenate((posting, np.empty(capacity - count, np.int64)))
                    distance = np.concatenate((distance, np.empty(capacity - count, np.int64)))
                query[count] = q
                posting[count] = i
                distance[count] = d + probes[p, 1]
                count += 1
    return query[:count], posting[:count], distance[:count]
