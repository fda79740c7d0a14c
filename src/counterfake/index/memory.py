"""The embedded candidate index: which registered photos share local features with an image?

Verifying a scanned image against every registered photo costs milliseconds per photo, so a
registry of 100,000 photos needs a shortlist first. Each registered photo contributes the first
INDEXED_FEATURES descriptors of each orientation (a well-spread prefix, see features.py) to a
binary multi-index hash (faiss ``IndexBinaryMultiHash``: the 256-bit descriptor is cut into
substrings, each looked up exactly and with one bit flipped). Every descriptor of the scanned
image votes once for each (photo, orientation) among its near neighbours, with a weight that
falls with the Hamming distance (((MAX_DISTANCE + 1 - d) / MAX_DISTANCE) ** 2): a textured photo
collects many weak, distant votes from any image, and a near-identical patch should outweigh
several of those. The most-voted go on to geometric verification.

faiss cannot delete from this index, so a withdrawn photo is dropped from the answers at once and
its rows are reclaimed by a rebuild once they make up a large share of the index.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import faiss
import numpy as np

from counterfake.signature.extract import Signature

INDEXED_FEATURES = 256  # per orientation
NEIGHBOURS = 2  # neighbours asked for per query descriptor
MAX_DISTANCE = 48  # of 256 bits; farther neighbours do not vote
HASH_TABLES = 3
HASH_BITS = 20
_REBUILD_DEAD_SHARE = 0.5


@dataclass(frozen=True)
class Candidate:
    photo_id: int
    mirrored: bool
    votes: float  # distance-weighted


class CandidateIndex:
    """An in-process index over registered photos' descriptors; safe to share between threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._descriptors: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._reset()

    def _reset(self) -> None:
        self._index = faiss.IndexBinaryMultiHash(256, HASH_TABLES, HASH_BITS)
        self._index.nflip = 1
        self._owner_chunks: list[np.ndarray] = []  # row -> photo_id * 2 + mirrored, per add
        self._owner = np.zeros(0, np.int64)  # the chunks joined, refreshed before a search
        self._dead_rows = 0

    def __len__(self) -> int:
        return len(self._descriptors)

    def __contains__(self, photo_id: int) -> bool:
        return photo_id in self._descriptors

    def add(self, photo_id: int, signature: Signature) -> None:
        """Index a photo's descriptors (re-adding an indexed photo replaces it)."""
        pair = (
            signature.features.descriptors[:INDEXED_FEATURES],
            signature.mirrored.descriptors[:INDEXED_FEATURES],
        )
        with self._lock:
            if photo_id in self._descriptors:
                self._forget(photo_id)
            self._descriptors[photo_id] = pair
            self._append(photo_id, pair)

    def remove(self, photo_id: int) -> None:
        """Stop answering with this photo, at once."""
        with self._lock:
            if photo_id in self._descriptors:
                self._forget(photo_id)
                if self._dead_rows > _REBUILD_DEAD_SHARE * max(1, self._index.ntotal):
                    self._rebuild()

    def candidates(self, descriptors: np.ndarray, limit: int) -> list[Candidate]:
        """The ``limit`` (photo, orientation) pairs with the most votes, best first."""
        if len(descriptors) == 0:
            return []
        with self._lock:
            if self._index.ntotal == 0:
                return []
            self._join_owners()
            distances, rows = self._index.search(np.ascontiguousarray(descriptors), NEIGHBOURS)
            owners = self._owner
            alive = self._descriptors.keys()
            near = (rows >= 0) & (distances <= MAX_DISTANCE)
            query_row = np.nonzero(near)[0]
            keys = owners[rows[near]]
        # One vote per (query descriptor, key), from its nearest row of that key.
        pair = query_row.astype(np.int64) * (1 << 40) + keys
        order = np.lexsort((distances[near], pair))
        first = np.unique(pair[order], return_index=True)[1]
        nearest = order[first]
        weight = ((MAX_DISTANCE + 1 - distances[near][nearest]) / MAX_DISTANCE) ** 2
        voted_keys, slot = np.unique(keys[nearest], return_inverse=True)
        votes = np.bincount(slot, weights=weight)
        result = []
        for i in np.argsort(-votes, kind="stable"):
            photo_id, mirrored = divmod(int(voted_keys[i]), 2)
            if photo_id in alive:
                result.append(Candidate(photo_id, bool(mirrored), float(votes[i])))
                if len(result) == limit:
                    break
        return result

    def prepare(self) -> None:
        """Finish what searches would do lazily, so that forked workers share it."""
        with self._lock:
            self._join_owners()

    def _join_owners(self) -> None:
        if len(self._owner) != self._index.ntotal:
            self._owner = np.concatenate(self._owner_chunks)
            self._owner_chunks = [self._owner]

    def _append(self, photo_id: int, pair: tuple[np.ndarray, np.ndarray]) -> None:
        for mirrored, codes in enumerate(pair):
            if len(codes):
                self._index.add(np.ascontiguousarray(codes))
                self._owner_chunks.append(np.full(len(codes), photo_id * 2 + mirrored, np.int64))

    def _forget(self, photo_id: int) -> None:
        codes = self._descriptors.pop(photo_id)
        self._dead_rows += sum(len(c) for c in codes)

    def _rebuild(self) -> None:
        self._reset()
        for photo_id, pair in self._descriptors.items():
            self._append(photo_id, pair)
