"""The speed benchmark's parts (bench/speed.py): synthetic signatures (a distractor's signature
with 15% of its descriptor bits flipped, always the same for a photo id, and distinct across a
large registry rather than a few hundred signatures repeated) and the per-stage profile."""

from __future__ import annotations

import numpy as np
import pytest

from bench.speed import FLIP_RATE, STAGES, SyntheticRegistry, profile_matching
from counterfake import matching
from counterfake.index.candidates import CandidateIndex
from counterfake.signature import cfsig
from counterfake.signature.extract import make_query, make_signature


def test_synthetic_signatures_are_reproducible_distinct_and_flip_fifteen_percent(photo, unrelated):
    templates = [make_signature(photo, "a", "0" * 64), make_signature(unrelated, "b", "0" * 64)]
    synthetic = SyntheticRegistry({}, templates)
    ids = [7 + 2 * k for k in (0, 1, 2, 300, 1000)]  # the same template, each its own mask
    made = [synthetic(i).features.descriptors.tobytes() for i in ids]
    assert len(set(made)) == len(ids)
    assert synthetic(ids[3]).features.descriptors.tobytes() == made[3]
    stored = cfsig.loads(cfsig.dumps([templates[ids[0] % 2]]), "template")[0]  # as registered
    template = stored.features.descriptors
    flipped = np.unpackbits(synthetic(ids[3]).features.descriptors ^ template).mean()
    assert abs(flipped - FLIP_RATE) < 0.01  # one mask; a later round (ids[4]) flips a second


def test_profile_splits_each_match_into_stages_and_leaves_the_matcher_as_it_was(photo, unrelated):
    signature = make_signature(photo, "a", "0" * 64)
    index = CandidateIndex()
    index.add(1, signature)
    queries = [make_query(photo), make_query(unrelated)]
    verify, decide = matching.verify, matching.decide

    profile = profile_matching(index, {1: signature}.__getitem__, queries)

    assert profile["verified"]["mean"] >= 0.5  # the registered photo's own copy was verified
    stages = sum(profile[stage]["mean"] for stage in (*STAGES, "rest"))
    assert stages == pytest.approx(profile["total"]["mean"])
    assert profile["index"]["mean"] > 0 and profile["verify"]["mean"] > 0
    assert (matching.verify, matching.decide) == (verify, decide)
    assert "candidates" not in vars(index)
