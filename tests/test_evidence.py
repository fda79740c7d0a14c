"""The number of false alarms: the binomial tail, spots counted once, the registry's size."""

import math

import numpy as np
import pytest

from counterfake.evidence import (
    BACKGROUND_CDF,
    DISTANCES,
    SPACING,
    Evidence,
    confirmed_spots,
    log10_binomial_tail,
    log10_binomial_tails,
)


def exact_tail(k: int, n: int, p: float) -> float:
    return sum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(k, n + 1))


@pytest.mark.parametrize(("k", "n", "p"), [(1, 1, 0.3), (3, 10, 0.1), (7, 40, 0.05), (20, 20, 0.5)])
def test_the_binomial_tail_equals_the_exact_sum(k, n, p):
    assert log10_binomial_tail(k, n, p) == pytest.approx(math.log10(exact_tail(k, n, p)))


def test_the_tail_stays_finite_where_the_plain_sum_underflows():
    assert log10_binomial_tail(300, 400, 0.002) < -600
    assert log10_binomial_tail(0, 10, 0.5) == 0.0
    assert log10_binomial_tail(11, 10, 0.5) == -math.inf


def test_tails_taken_together_equal_each_taken_alone():
    ks, ps = [0, 1, 5, 40, 41, 3], [0.5, 0.00017, 0.01, 0.2, 0.2, 0.9]
    together = log10_binomial_tails(ks, 40, ps)
    alone = [log10_binomial_tail(k, 40, p) for k, p in zip(ks, ps, strict=True)]
    assert together[4] == alone[4] == -math.inf
    assert np.delete(together, 4) == pytest.approx(np.delete(alone, 4))
    assert math.isclose(together[3], math.log10(exact_tail(40, 40, 0.2)))


def test_the_background_is_a_distribution_over_every_distance():
    assert len(BACKGROUND_CDF) == DISTANCES
    assert all(0 < p < 1 for p in BACKGROUND_CDF)
    assert list(BACKGROUND_CDF) == sorted(BACKGROUND_CDF)


def test_features_on_one_spot_count_once():
    """Twenty corners on one small object (a moon in a black sky) are one piece of evidence."""
    blob = np.full((20, 2), 100.0) + np.random.default_rng(1).uniform(0, SPACING / 4, (20, 2))
    spread = np.stack([np.arange(20) * 3 * SPACING, np.full(20, 50.0)], axis=1)
    everywhere = np.ones(20, bool)
    distance = np.arange(20)
    assert confirmed_spots(blob, everywhere, distance) == (1, (0,))
    assert confirmed_spots(spread, everywhere, distance) == (20, tuple(range(20)))


def test_only_visible_features_count_and_unconfirmed_ones_add_no_distance():
    xy = np.stack([np.arange(4) * 3 * SPACING, np.zeros(4)], axis=1)
    visible = np.array([True, True, True, False])
    distance = np.array([30, 10, 10_000, 0])
    assert confirmed_spots(xy, visible, distance) == (3, (10, 30))


def test_a_registry_ten_times_larger_multiplies_the_false_alarms_by_ten():
    found = Evidence(100, (5, 10, 20, 30, 40), textured=400, agree=120)
    assert found.log10_nfa(10_000) - found.log10_nfa(1_000) == pytest.approx(1.0)


def test_many_close_confirmations_are_strong_evidence_and_far_ones_are_none():
    copy = Evidence(150, (8,) * 30 + tuple(range(10, 40)))
    look_alike = Evidence(150, (30, 40, 45, 50, 55, 60, 62, 63))
    assert copy.log10_nfa(10_000_000) < -20
    assert look_alike.log10_nfa(1) > 0


def test_textured_cells_that_agree_are_evidence_of_their_own():
    """A copy whose features suffered (a small, recompressed screenshot) still shows its
    textured parts in the right colours; a look-alike on a plain background does not."""
    copy = Evidence(150, (40, 50), textured=800, agree=480)
    look_alike = Evidence(150, (40, 50), textured=800, agree=80)
    assert copy.log10_nfa(100_000) < -10
    assert look_alike.log10_nfa(1) > 0
