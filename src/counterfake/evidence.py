"""How much an alignment proves: its number of false alarms (NFA), a-contrario.

Verification finds a transform that carries the scanned image's features onto a registered
photo's. That alone proves little: another woman photographed in the same pose on the same
plain background also aligns, because the layout is the same. What a different photo cannot
reproduce is the detail: its features land in the same places, but their descriptors (256 bits
describing the patch around each point) differ by many bits, and its textured parts (face,
hair, a patterned wall) differ in colour and contrast. A copy keeps both, even recompressed.

The background hypothesis H0 is "the scanned image is a *different* photo, however alike,
aligned as well as verification could". Two counts are tested against it (the a-contrario
approach of Moisan & Stival, 2004, with a background learnt from data as Rabin, Delon &
Gousseau, 2009, do for descriptors):

1. **Features.** ``n`` visible spots: the registered photo's features that lie inside the
   scanned image under the transform, features within ``SPACING`` pixels of each other counted
   once (twenty corners on one small object are one piece of evidence, not twenty). Each
   confirmed spot has the descriptor distance of its closest scanned feature that lands within
   the verification radius. Sorted, the k-th closest distance ``d_k`` gives the tail
   P[Binomial(n, F(d_k)) >= k], where F(d) is H0's chance that a visible spot is confirmed at
   distance d or less (``BACKGROUND_CDF``). The smallest tail over k is kept, and paid for with
   ``DISTANCES`` thresholds tried.
2. **Texture.** ``m`` textured cells of the registered photo's grid are visible, ``j`` of them
   agree in colour and contrast after the global fit; neighbouring cells are not independent,
   so ``CELLS_PER_SAMPLE`` cells count as one sample. The tail is
   P[Binomial(m', GRID_AGREEMENT_RATE) >= j'].

``NFA = 2 x registry size x 2 x min(DISTANCES x tail 1, tail 2)``: every (photo, orientation)
of the registry, and both tests. It is the number of unrelated registered photos expected to
align as well as this one; a match is reported only below ``MAX_NFA``, whatever the registry's
size, because the size is part of the count.

The constants are measured by ``python -m bench.background`` on aligned pairs of different
studio photos (women in the same pose on a plain background, the hardest negatives in
../shared/data) and set at 1.5 times what it measured; docs/matching.md has the figures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SPACING = 8.0  # pixels of the 512-pixel reference frame: features closer are one spot
DISTANCES = 65  # descriptor distances 0..64 bits at which a spot can be confirmed
MARGIN = 1.5  # the measured background rates are raised this much
# F(d) for d = 0..64: the share of visible spots of a different, aligned photo confirmed at d
# bits or less (bench/results/background.json: 55 alignments, 7,702 spots), times MARGIN; no
# share is taken below the measurement's resolution (one spot in 7,702).
# fmt: off
BACKGROUND_CDF = (
    0.00019, 0.00019, 0.00019, 0.00019, 0.00019, 0.00019, 0.00019, 0.00019,
    0.00019, 0.00019, 0.00019, 0.00058, 0.00058, 0.00117, 0.00136, 0.00214,
    0.0037, 0.00506, 0.00584, 0.00779, 0.00915, 0.01149, 0.01461, 0.01792,
    0.02064, 0.02454, 0.02824, 0.03252, 0.03583, 0.03895, 0.04382, 0.04849,
    0.05375, 0.05726, 0.06135, 0.06563, 0.07109, 0.07654, 0.08219, 0.08686,
    0.09173, 0.09718, 0.10166, 0.10595, 0.10984, 0.11159, 0.11491, 0.12036,
    0.12328, 0.12601, 0.1299, 0.13224, 0.13438, 0.13555, 0.13672, 0.13867,
    0.13983, 0.141, 0.14256, 0.14353, 0.1449, 0.14568, 0.14607, 0.14665,
    0.14684,
)
# fmt: on
TEXTURED_CONTRAST = 3.0  # lightness std (8-bit Lab) from which a grid cell is textured
# H0's share of visible textured cells that agree: 95% of the aligned studio negatives agree
# on at most 0.135 of theirs (the largest, 0.386, is the same woman from the same shoot)
GRID_AGREEMENT_RATE = 0.2
CELLS_PER_SAMPLE = 4  # neighbouring grid cells vary together: four count as one sample
MAX_NFA = 0.01  # fewer than one scanned image in a hundred aligns this well by chance


@dataclass(frozen=True)
class Evidence:
    """What an alignment shows: ``visible`` spots, the descriptor distance of each confirmed
    one (ascending), ``textured`` visible textured cells and how many of them ``agree``."""

    visible: int
    confirmed: tuple[int, ...]
    textured: int = 0
    agree: int = 0

    def log10_nfa(self, registry_size: int) -> float:
        """log10 of the number of false alarms in a registry of ``registry_size`` photos."""
        tests = 2 * max(registry_size, 1) * 2
        return math.log10(tests) + min(
            math.log10(DISTANCES) + self.feature_tail(), self.texture_tail()
        )

    def feature_tail(self) -> float:
        """log10 of the smallest binomial tail over the confirmed spots' distances.

        Of the spots confirmed at one distance, only the last (largest k, same rate) can give
        the smallest tail, so one tail per distinct distance is enough.
        """
        last_at = {d: k for k, d in enumerate(self.confirmed, start=1)}
        return min(
            (
                log10_binomial_tail(k, self.visible, BACKGROUND_CDF[min(d, DISTANCES - 1)])
                for d, k in last_at.items()
            ),
            default=0.0,
        )

    def texture_tail(self) -> float:
        samples, agreeing = self.textured // CELLS_PER_SAMPLE, self.agree // CELLS_PER_SAMPLE
        return log10_binomial_tail(agreeing, samples, GRID_AGREEMENT_RATE)


def confirmed_spots(
    photo_xy: np.ndarray, visible: np.ndarray, confirmed_distance: np.ndarray
) -> tuple[int, tuple[int, ...]]:
    """(visible spots, each confirmed spot's smallest distance in ascending order).

    ``photo_xy`` (n, 2): the registered photo's features in its frame; ``visible`` (n,): which
    lie inside the scanned image under the transform; ``confirmed_distance`` (n,): the distance
    of the closest scanned descriptor landing where the transform puts each feature, or a value
    above 64 where none does.
    """
    spot = spots(photo_xy)[visible]
    distance = np.asarray(confirmed_distance)[visible]
    if len(spot) == 0:
        return 0, ()
    order = np.lexsort((distance, spot))
    first = np.ones(len(order), bool)
    first[1:] = spot[order][1:] != spot[order][:-1]
    best = distance[order][first]
    return int(first.sum()), tuple(int(d) for d in np.sort(best[best < DISTANCES]))


def spots(xy: np.ndarray) -> np.ndarray:
    """One integer per SPACING x SPACING square of the frame a feature falls in."""
    cells = np.floor(np.asarray(xy, np.float64) / SPACING).astype(np.int64)
    return cells[:, 1] * 100_000 + cells[:, 0]


def log10_binomial_tail(k: int, n: int, p: float) -> float:
    """log10 P[Binomial(n, p) >= k], summed in log space (the terms underflow long before 0)."""
    if k <= 0:
        return 0.0
    if k > n:
        return -math.inf
    j = np.arange(k, n + 1)
    log_factorial = _log_factorials(n)
    terms = (
        log_factorial[n]
        - log_factorial[j]
        - log_factorial[n - j]
        + j * math.log(p)
        + (n - j) * math.log1p(-p)
    )
    largest = float(terms.max())
    return (largest + math.log(float(np.exp(terms - largest).sum()))) / math.log(10)


_LOG_FACTORIALS = np.zeros(1)


def _log_factorials(n: int) -> np.ndarray:
    """log(i!) for i = 0..n at least, grown as needed and kept."""
    global _LOG_FACTORIALS
    if len(_LOG_FACTORIALS) <= n:
        size = max(n + 1, 2 * len(_LOG_FACTORIALS), 4096)
        _LOG_FACTORIALS = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, size)))])
    return _LOG_FACTORIALS
