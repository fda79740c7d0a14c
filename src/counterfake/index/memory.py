"""The embedded candidate index: which registered photos share local features with an image?

Verifying a scanned image against every registered photo costs milliseconds per photo, so a
registry of 100,000 photos needs a shortlist first, and the shortlist must cost about the same
whatever the registry's size.

Each registered photo contributes the first INDEXED_FEATURES descriptors of each orientation (a
well-spread prefix, see features.py). Every descriptor is filed under HASH_TABLES keys, each key
being one KEY_BITS-bit slice of the 256-bit descriptor (multi-index hashing: two descriptors a
few dozen bits apart very likely agree exactly on at least one slice). A scanned image's first
QUERY_FEATURES descriptors (also spread-ordered) look up their slices; the rows found are checked
with their full Hamming distance, and every row within MAX_DISTANCE votes for its (photo,
orientation), once per scanned descriptor, with a weight that falls with the distance
(((MAX_DISTANCE + 1 - d) / MAX_DISTANCE) ** 2): a textured photo collects many weak, distant
votes from any image, and a near-identical patch should outweigh several of those. The most-voted
go on to geometric verification, which uses the full stored signature; the index only decides
what is verified, never what matches.

Each table is a pair of sorted arrays (slice values and row numbers), so a lookup is a binary
search and all the work is vectorised; the cost grows with the logarithm of the registry and with
how many rows share a slice, not with the number of photos. Photos added after the last search are
sorted into a new small segment; segments are merged when a newer one grows to half the size of
the one before (as a log-structured merge does), so a stream of additions never re-sorts the
whole index. A withdrawn photo is dropped from the answers at once; its rows are reclaimed when
the dead rows make up half the index.

Memory per indexed descriptor: 32 bytes of descriptor, 8 of owner, and 8 per table (slice value
and row): 120 bytes, 61,440 bytes per photo (2 x 256 descriptors). Fewer indexed or voting
descriptors (128 per orientation, 500 voting) make the index twice as fast and half as large,
but lost 1.6% of the benchmark's positives from the shortlist and 2.2% of manipulated
derivatives in the end.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from counterfake.signature.extract import Signature
from counterfake.signature.features import DESCRIPTOR_BYTES

INDEXED_FEATURES = 256  # per orientation
QUERY_FEATURES = 1000  # of a scanned image's spread-ordered descriptors, used to vote
MAX_DISTANCE = 48  # of 256 bits; farther rows do not vote
HASH_TABLES = 10
KEY_BITS = 24  # one slice of three bytes per table: tables use bytes 0..29 of the descriptor
_KEY_BYTES = KEY_BITS // 8
_REBUILD_DEAD_SHARE = 0.5
_ORIENTATIONS = 2  # a key is photo_id * 2 + mirrored


@dataclass(frozen=True)
class Candidate:
    photo_id: int
    mirrored: bool
    votes: float  # distance-weighted


def _slices(descriptors: np.ndarray) -> np.ndarray:
    """(HASH_TABLES, n) uint32: the slice of each descriptor that each table files it under."""
    parts = descriptors[:, : HASH_TABLES * _KEY_BYTES].reshape(-1, HASH_TABLES, _KEY_BYTES)
    shifts = (8 * np.arange(_KEY_BYTES)).astype(np.uint32)
    return (parts.astype(np.uint32) << shifts).sum(axis=2, dtype=np.uint32).T


class _Segment:
    """An immutable block of indexed rows with its sorted tables."""

    def __init__(self, codes: np.ndarray, owners: np.ndarray) -> None:
        self.codes = np.ascontiguousarray(codes).view(np.uint64).reshape(-1, 4)
        self.owners = owners
        self.keys = []
        self.rows = []
        for table in _slices(codes):
            order = np.argsort(table, kind="stable").astype(np.uint32)
            self.rows.append(order)
            self.keys.append(table[order])

    def __len__(self) -> int:
        return len(self.owners)

    @property
    def nbytes(self) -> int:
        tables = sum(k.nbytes + r.nbytes for k, r in zip(self.keys, self.rows, strict=True))
        return self.codes.nbytes + self.owners.nbytes + tables

    def near(self, slices: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, ...]:
        """(query row, owner, distance) for every row sharing a slice, within MAX_DISTANCE."""
        found_rows, found_queries = [], []
        for keys, rows, probes in zip(self.keys, self.rows, slices, strict=True):
            low = np.searchsorted(keys, probes, "left")
            count = np.searchsorted(keys, probes, "right") - low
            hit = np.nonzero(count)[0]
            if len(hit) == 0:
                continue
            low, count = low[hit], count[hit]
            total = int(count.sum())
            # positions low[i] .. low[i] + count[i] - 1 for every hit, as one flat array
            run_start = np.repeat(low - np.cumsum(count) + count, count)
            found_rows.append(rows[run_start + np.arange(total)])
            found_queries.append(np.repeat(hit, count))
        if not found_rows:
            empty = np.zeros(0, np.int64)
            return empty, empty, empty
        rows = np.concatenate(found_rows)
        queries = np.concatenate(found_queries)
        distance = np.bitwise_count(self.codes[rows] ^ codes[queries]).sum(axis=1, dtype=np.int64)
        near = distance <= MAX_DISTANCE
        return queries[near], self.owners[rows[near]], distance[near]


class CandidateIndex:
    """An in-process index over registered photos' descriptors; safe to share between threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._descriptors: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._segments: list[_Segment] = []
        self._pending: list[tuple[int, tuple[np.ndarray, np.ndarray]]] = []
        self._dead_rows = 0

    def __len__(self) -> int:
        return len(self._descriptors)

    def __contains__(self, photo_id: int) -> bool:
        return photo_id in self._descriptors

    @property
    def nbytes(self) -> int:
        """Memory held by the searchable tables (what a registry of this size costs)."""
        self.prepare()
        return sum(s.nbytes for s in self._segments)

    def prepare(self) -> None:
        """Sort what was added into the searchable tables now rather than at the next search.

        Call it before forking workers, so that they share the tables instead of each sorting
        its own copy.
        """
        with self._lock:
            self._settle()

    def add(self, photo_id: int, signature: Signature) -> None:
        """Index a photo's descriptors (re-adding an indexed photo replaces it)."""
        pair = (  # copies: a view would keep the signature's whole descriptor arrays alive
            signature.features.descriptors[:INDEXED_FEATURES].copy(),
            signature.mirrored.descriptors[:INDEXED_FEATURES].copy(),
        )
        with self._lock:
            if photo_id in self._descriptors:
                self._forget(photo_id)
            self._descriptors[photo_id] = pair
            self._pending.append((photo_id, pair))

    def remove(self, photo_id: int) -> None:
        """Stop answering with this photo, at once."""
        with self._lock:
            if photo_id in self._descriptors:
                self._forget(photo_id)
                total = sum(len(s) for s in self._segments)
                if self._dead_rows > _REBUILD_DEAD_SHARE * max(1, total):
                    self._rebuild()

    def candidates(self, descriptors: np.ndarray, limit: int) -> list[Candidate]:
        """The ``limit`` (photo, orientation) pairs with the most votes, best first."""
        descriptors = np.ascontiguousarray(descriptors[:QUERY_FEATURES], np.uint8)
        if len(descriptors) == 0:
            return []
        slices = _slices(descriptors)
        codes = descriptors.view(np.uint64).reshape(-1, 4)
        with self._lock:  # segments never change once made: search them outside the lock
            self._settle()
            segments = list(self._segments)
            alive = self._descriptors.keys()
        found = [segment.near(slices, codes) for segment in segments]
        if not found:
            return []
        queries, owners, distance = (np.concatenate(parts) for parts in zip(*found, strict=True))
        # One vote per (query descriptor, owner), from its nearest row: sorting the packed
        # (query, owner, distance) puts each pair's nearest row first in its run.
        packed = np.unique((queries << 40 | owners) << 8 | distance)
        pair = packed >> 8
        first = np.ones(len(packed), bool)
        first[1:] = pair[1:] != pair[:-1]
        packed = packed[first]
        weight = ((MAX_DISTANCE + 1 - (packed & 0xFF)) / MAX_DISTANCE) ** 2
        voted, slot = np.unique(packed >> 8 & ((1 << 40) - 1), return_inverse=True)
        votes = np.bincount(slot, weights=weight)
        result = []
        for i in np.argsort(-votes, kind="stable"):
            photo_id, mirrored = divmod(int(voted[i]), _ORIENTATIONS)
            if photo_id in alive:
                result.append(Candidate(photo_id, bool(mirrored), float(votes[i])))
                if len(result) == limit:
                    break
        return result

    def _settle(self) -> None:
        """Turn pending additions into a segment and merge segments of similar size."""
        if self._pending:
            codes, owners = [], []
            for photo_id, pair in self._pending:
                for mirrored, rows in enumerate(pair):
                    codes.append(rows)
                    owners.append(np.full(len(rows), photo_id * _ORIENTATIONS + mirrored, np.int64))
            self._pending = []
            joined = np.concatenate(codes).reshape(-1, DESCRIPTOR_BYTES)
            if len(joined):
                self._segments.append(_Segment(joined, np.concatenate(owners)))
        while len(self._segments) > 1 and 2 * len(self._segments[-1]) >= len(self._segments[-2]):
            newer, older = self._segments.pop(), self._segments.pop()
            self._segments.append(
                _Segment(
                    np.concatenate([older.codes, newer.codes]).view(np.uint8),
                    np.concatenate([older.owners, newer.owners]),
                )
            )

    def _forget(self, photo_id: int) -> None:
        codes = self._descriptors.pop(photo_id)
        waiting = len(self._pending)
        self._pending = [(p, pair) for p, pair in self._pending if p != photo_id]
        if len(self._pending) == waiting:  # already in a segment: its rows are now dead
            self._dead_rows += sum(len(c) for c in codes)

    def _rebuild(self) -> None:
        self._segments = []
        self._pending = list(self._descriptors.items())
        self._dead_rows = 0
