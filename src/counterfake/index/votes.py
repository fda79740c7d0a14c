"""How the candidate index's nearest rows become candidates, and how shards' rows merge.

Each scanned descriptor keeps its NEIGHBOURS nearest indexed rows (candidates.py); each of
them votes once for its (photo, orientation). Of rows equally near, the one whose owner ranks
first is kept (:func:`nearer`). That makes the nearest rows a property of the rows alone, not of
the order they were met in, so an index split by photo over shards (cluster/) gives the same
candidates as one index: each shard keeps its own nearest rows, the caller keeps the nearest of
theirs (:func:`merge_nearest`) and counts the votes once (:func:`vote`).

The rank is the owner scrambled by the scanned descriptor (its first three bytes: its key in
the first hash table): ranking ties by the owner itself would hand every tie to the lowest photo
ids, and clutter that lies equally near many photos (a phone's interface) would then pile its
votes on a few of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numba
import numpy as np

from counterfake.signature.extract import Signature

NEIGHBOURS = 2  # nearest rows kept per scanned descriptor
MAX_DISTANCE = 48  # of 256 bits; farther rows do not vote
ORIENTATIONS = 2  # a candidate's owner is photo_id * 2 + mirrored, kept in 32 bits
_SCRAMBLE = 2654435761  # odd: multiplying by it modulo 2**32 is a bijection
_LOW_32 = (1 << 32) - 1


@dataclass(frozen=True)
class Candidate:
    photo_id: int
    mirrored: bool
    votes: float  # distance-weighted


class Proposer(Protocol):
    """What the matcher asks for candidates: a CandidateIndex, or shards of one (cluster/)."""

    def __len__(self) -> int: ...

    def candidates(
        self, descriptors: np.ndarray, limit: int, mirrored: np.ndarray | None = None
    ) -> list[Candidate]: ...


class CandidateSource(Proposer, Protocol):
    """A proposer that follows registrations: a CandidateIndex in this process, or an index
    split over a Ray cluster's actors (cluster/shards.py)."""

    def __contains__(self, photo_id: int) -> bool: ...

    def add(self, photo_id: int, signature: Signature) -> None: ...

    def remove(self, photo_id: int) -> None: ...

    def prepare(self) -> None: ...

    def compact(self) -> None: ...


@numba.njit(inline="always")
def nearer(distance, owner, other_distance, other_owner, salt):  # pragma: no cover - compiled
    """Whether a row at ``distance`` of ``owner`` goes before another (``other_owner`` -1: no
    row), for the scanned descriptor whose ``salt`` is its first three bytes."""
    if distance != other_distance:
        return distance < other_distance
    if other_owner < 0:
        return False
    return _rank(owner, salt) < _rank(other_owner, salt)


@numba.njit(inline="always")
def _rank(owner, salt):  # pragma: no cover - compiled
    return ((np.uint64(owner) ^ np.uint64(salt)) * np.uint64(_SCRAMBLE)) & np.uint64(_LOW_32)


def merge_nearest(
    descriptors: np.ndarray, parts: list[tuple[np.ndarray, np.ndarray]]
) -> tuple[np.ndarray, np.ndarray]:
    """The nearest rows of an index split by photo into parts, from each part's
    ``CandidateIndex.nearest(descriptors)``, ordered as one index orders them (:func:`nearer`),
    so that :func:`vote` then gives what one index over every part would."""
    owner = np.concatenate([owner for owner, _ in parts], axis=1)
    distance = np.concatenate([distance for _, distance in parts], axis=1)
    voting = np.asarray(descriptors[: len(owner)], np.uint64)
    salt = voting[:, 0] | voting[:, 1] << np.uint64(8) | voting[:, 2] << np.uint64(16)
    rank = ((owner.astype(np.uint64) & _LOW_32) ^ salt[:, None]) * np.uint64(_SCRAMBLE)
    key = distance.astype(np.uint64) << np.uint64(32) | rank & np.uint64(_LOW_32)
    order = np.argsort(key, axis=1, kind="stable")[:, :NEIGHBOURS]
    return np.take_along_axis(owner, order, 1), np.take_along_axis(distance, order, 1)


def vote_both(
    nearest: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    descriptors: np.ndarray,
    mirrored: np.ndarray | None,
    limit: int,
) -> list[Candidate]:
    """:func:`vote` over the nearest rows of a scanned image's descriptors and, when given,
    of its mirror image's: an index holds one orientation of each photo (owner photo_id * 2),
    and a row that a mirror descriptor meets votes for the photo's mirrored orientation."""
    owner, distance = nearest(descriptors)
    if mirrored is not None and len(mirrored):
        mirror_owner, mirror_distance = nearest(mirrored)
        owner = np.concatenate([owner, np.where(mirror_owner >= 0, mirror_owner | 1, -1)])
        distance = np.concatenate([distance, mirror_distance])
    return vote(owner, distance, limit)


def vote(owner: np.ndarray, distance: np.ndarray, limit: int) -> list[Candidate]:
    """The ``limit`` most-voted (photo, orientation) pairs from :meth:`CandidateIndex.nearest`:
    each scanned descriptor votes once for the owner of each of its nearest rows (several of
    them may be one photo's), weighted by distance."""
    columns, nears = [], []
    for column in range(owner.shape[1]):
        fresh = owner[:, column] >= 0
        for earlier in range(column):
            fresh &= owner[:, column] != owner[:, earlier]
        columns.append(owner[fresh, column])
        nears.append(distance[fresh, column])
    if not sum(map(len, columns)):
        return []
    voters, near = np.concatenate(columns), np.concatenate(nears)
    weight = ((MAX_DISTANCE + 1 - near) / MAX_DISTANCE) ** 2
    voted, slot = np.unique(voters, return_inverse=True)
    votes = np.bincount(slot, weights=weight)
    best = np.argsort(-votes, kind="stable")[:limit]
    return [
        Candidate(int(voted[i]) // ORIENTATIONS, bool(voted[i] % ORIENTATIONS), float(votes[i]))
        for i in best
    ]
