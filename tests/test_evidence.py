"""The number of false alarms: the binomial tail, spots counted once, the registry's size."""

import math

import numpy as np
import pytest

from counterfake.evidence import LEVELS, SPACING, Evidence, evidence, log10_binomial_tail


def exact_tail(k: int, n: int, p: float) -> float:
    return sum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(k, n + 1))


@pytest.mark.parametrize(("k", "n", "p"), [(1, 1, 0.3), (3, 10, 0.1), (7, 40, 0.05), (20, 20, 0.5)])
def test_the_binomial_tail_equals_the_exact_sum(k, n, p):
    assert log10_binomial_tail(k, n, p) == pytest.approx(math.log10(exact_tail(k, n, p)))


def test_the_tail_stays_finite_where_the_plain_sum_underflows():
    assert log10_binomial_tail(300, 400, 0.002) < -600
    assert log10_binomial_tail(0, 10, 0.5) == 0.0
    assert log10_binomial_tail(11, 10, 0.5) == -math.inf


def test_features_on_one_spot_count_once():
    """Twenty corners on one small object (a moon in a black sky) are one piece of evidence."""
    blob = np.full((20, 2), 100.0) + np.random.default_rng(1).uniform(0, SPACING / 4, (20, 2))
    spread = np.stack([np.arange(20) * 3 * SPACING, np.full(20, 50.0)], axis=1)
    everywhere = np.ones(20, bool)
    close = np.zeros(20)
    assert evidence(blob, everywhere, close) == Evidence(1, (1,) * len(LEVELS))
    assert evidence(spread, everywhere, close) == Evidence(20, (20,) * len(LEVELS))


def test_only_visible_features_count_and_levels_follow_the_distance():
    xy = np.stack([np.arange(4) * 3 * SPACING, np.zeros(4)], axis=1)
    visible = np.array([True, True, True, False])
    distance = np.array([10, 30, 1000, 0])
    assert evidence(xy, visible, distance) == Evidence(3, (1, 1, 2, 2, 2))


def test_a_registry_ten_times_larger_multiplies_the_false_alarms_by_ten():
    found = Evidence(100, (5, 10, 20, 30, 40))
    assert found.log10_nfa(10_000) - found.log10_nfa(1_000) == pytest.approx(1.0)


def test_many_close_confirmations_are_strong_evidence_and_few_are_none():
    copy = Evidence(150, (60, 80, 100, 110, 120))
    look_alike = Evidence(150, (0, 3, 8, 18, 25))
    assert copy.log10_nfa(10_000_000) < -50
    assert look_alike.log10_nfa(1) > 0
