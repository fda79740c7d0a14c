"""The compiled Hamming kernels agree with a plain count of differing bits."""

from __future__ import annotations

import numpy as np

from counterfake.signature.features import DESCRIPTOR_BYTES
from counterfake.signature.hamming import as_words, distance, two_nearest


def bit_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """All pairwise distances, counted bit by bit."""
    return np.unpackbits(a[:, None, :] ^ b[None, :, :], axis=2).sum(axis=2)


def test_distance_counts_the_differing_bits():
    rng = np.random.default_rng(1)
    a, b = (rng.integers(0, 256, (20, DESCRIPTOR_BYTES), dtype=np.uint8) for _ in range(2))
    expected = bit_distances(a, b)
    wa, wb = as_words(a), as_words(b)
    assert all(distance(wa, i, wb, j) == expected[i, j] for i in range(20) for j in range(20))


def test_two_nearest_are_the_two_smallest_distances_in_order():
    rng = np.random.default_rng(2)
    reference = rng.integers(0, 256, (40, DESCRIPTOR_BYTES), dtype=np.uint8)
    query = rng.integers(0, 256, (300, DESCRIPTOR_BYTES), dtype=np.uint8)
    query[17] = reference[5]  # an exact copy is the nearest at distance 0
    distances, nearest = two_nearest(reference, query)
    expected = np.sort(bit_distances(reference, query), axis=1)[:, :2]
    assert (distances == expected).all()
    assert nearest[5, 0] == 17 and distances[5, 0] == 0
    all_distances = bit_distances(reference, query)
    rows = np.arange(40)[:, None]
    assert (all_distances[rows, nearest] == distances).all()
