"""Hamming distances between binary descriptors, compiled.

Both halves of matching spend their time here: the index compares a scanned image's descriptors
with the rows that share a key, and verification pairs each of a candidate's descriptors with its
two nearest in the scanned image. numba compiles these loops to machine code; vectorised numpy
spends most of its time on temporaries, and OpenCV's ``batchDistance`` took about 4.5 ms for one
candidate's 512 x 1,000 comparisons, the largest cost of a match.
"""

from __future__ import annotations

import numba
import numpy as np

from counterfake.signature.features import DESCRIPTOR_BYTES

WORDS = DESCRIPTOR_BYTES // 8  # a descriptor as four 64-bit words


def as_words(descriptors: np.ndarray) -> np.ndarray:
    """(n, 32) uint8 descriptors viewed as (n, 4) uint64 words, for the compiled loops."""
    return np.ascontiguousarray(descriptors, np.uint8).view(np.uint64).reshape(-1, WORDS)


@numba.njit(inline="always")
def popcount(x: np.uint64) -> np.uint64:
    """Set bits of a 64-bit word (the classic bit-slicing count; LLVM emits one instruction)."""
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return (x * np.uint64(0x0101010101010101)) >> np.uint64(56)


@numba.njit(inline="always")
def distance(a: np.ndarray, i: int, b: np.ndarray, j: int) -> np.uint64:
    """Hamming distance between descriptor ``i`` of ``a`` and descriptor ``j`` of ``b``."""
    return (
        popcount(a[i, 0] ^ b[j, 0])
        + popcount(a[i, 1] ^ b[j, 1])
        + popcount(a[i, 2] ^ b[j, 2])
        + popcount(a[i, 3] ^ b[j, 3])
    )


def two_nearest(reference: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each reference descriptor, its two nearest query descriptors, nearer first:
    (distances, indices), both (n, 2) int32. Needs at least two query descriptors."""
    reference_words = as_words(reference)
    query_by_word = np.ascontiguousarray(as_words(query).T)
    distances = np.empty((len(reference_words), 2), np.int32)
    nearest = np.empty((len(reference_words), 2), np.int32)
    _two_nearest(reference_words, query_by_word, distances, nearest)
    return distances, nearest


@numba.njit(cache=True, nogil=True)
def _two_nearest(reference, query_by_word, distances, nearest):  # pragma: no cover - compiled
    """The query is stored word by word ((4, m): each word of all descriptors together), so the
    distances from one reference descriptor to all of them are one branch-free loop over
    contiguous arrays, which the compiler vectorises; picking the two smallest is a second
    pass. One loop doing both, over (m, 4) rows, took about 1.5 times as long."""
    q0, q1, q2, q3 = query_by_word[0], query_by_word[1], query_by_word[2], query_by_word[3]
    found = np.empty(query_by_word.shape[1], np.int32)
    for i in range(reference.shape[0]):
        r0, r1, r2, r3 = reference[i, 0], reference[i, 1], reference[i, 2], reference[i, 3]
        for j in range(found.shape[0]):
            found[j] = (
                popcount(r0 ^ q0[j])
                + popcount(r1 ^ q1[j])
                + popcount(r2 ^ q2[j])
                + popcount(r3 ^ q3[j])
            )
        best, second, best_j, second_j = 1 << 30, 1 << 30, -1, -1
        for j in range(found.shape[0]):
            d = found[j]
            if d < second:
                if d < best:
                    best, second, best_j, second_j = d, best, j, best_j
                else:
                    second, second_j = d, j
        distances[i, 0], distances[i, 1] = best, second
        nearest[i, 0], nearest[i, 1] = best_j, second_j
