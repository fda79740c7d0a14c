"""The benchmarks' synthetic signatures (bench/speed.py): a distractor's signature with 15% of
its descriptor bits flipped, always the same for a photo id, and distinct across a large
registry rather than a few hundred signatures repeated."""

from __future__ import annotations

import numpy as np

from bench.speed import FLIP_RATE, SyntheticRegistry
from counterfake.signature.extract import make_signature


def test_synthetic_signatures_are_reproducible_distinct_and_flip_fifteen_percent(photo, unrelated):
    templates = [make_signature(photo, "a", ""), make_signature(unrelated, "b", "")]
    synthetic = SyntheticRegistry({}, templates)
    ids = [7 + 2 * k for k in (0, 1, 2, 300, 1000)]  # the same template, each its own mask
    made = [synthetic(i).features.descriptors.tobytes() for i in ids]
    assert len(set(made)) == len(ids)
    assert synthetic(ids[3]).features.descriptors.tobytes() == made[3]
    template = templates[ids[0] % 2].features.descriptors
    flipped = np.unpackbits(synthetic(ids[4]).features.descriptors ^ template).mean()
    assert abs(flipped - FLIP_RATE) < 0.01
