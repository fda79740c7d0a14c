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
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from counterfake.geometry import project
from counterfake.signature.grid import dequantise

SPACING = 8.0  # pixels of the 512-pixel reference frame: features closer are one spot
DISTANCES = 65  # descriptor distances 0..64 bits at which a spot can be confirmed
MARGIN = 1.5  # the measured background rates are raised this much
# F(d) for d = 0..64: the share of visible spots of a different, aligned photo confirmed at d
# bits or less (bench/results/background.json: 62 alignments, 8,695 spots), times MARGIN; no
# share is taken below the measurement's resolution (one spot in 8,695).
# fmt: off
BACKGROUND_CDF = (
    0.00017, 0.00017, 0.00017, 0.00017, 0.00017, 0.00017, 0.00017, 0.00017,
    0.00017, 0.00017, 0.00017, 0.00069, 0.00086, 0.00138, 0.00155, 0.00224,
    0.0038, 0.005, 0.00587, 0.00759, 0.0088, 0.01121, 0.01432, 0.01742,
    0.02018, 0.02363, 0.02708, 0.03157, 0.0345, 0.03778, 0.04227, 0.04761,
    0.05279, 0.05624, 0.06055, 0.06486, 0.07039, 0.07573, 0.08194, 0.08643,
    0.09109, 0.09678, 0.10127, 0.10661, 0.1111, 0.113, 0.11662, 0.12162,
    0.12421, 0.12697, 0.13076, 0.13318, 0.13525, 0.13663, 0.13767, 0.13956,
    0.1406, 0.14181, 0.14405, 0.14508, 0.14646, 0.14715, 0.1475, 0.14819,
    0.14836,
)
# fmt: on
TEXTURED_CONTRAST = 3.0  # lightness std (8-bit Lab) from which a grid cell is textured
# H0's share of visible textured cells that agree: 95% of the aligned studio negatives agree
# on at most 0.142 of theirs (the largest, 0.389, is the same woman from the same shoot)
GRID_AGREEMENT_RATE = 0.21
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
        if not last_at:
            return 0.0
        rates = [BACKGROUND_CDF[min(d, DISTANCES - 1)] for d in last_at]
        return float(log10_binomial_tails(list(last_at.values()), self.visible, rates).min())

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


def alignment_evidence(
    query_xy: np.ndarray,
    reference_xy: np.ndarray,
    nearest: tuple[np.ndarray, np.ndarray],
    transform: np.ndarray,
    frame: tuple[int, int],
    grid: np.ndarray,
    visible_cells: np.ndarray | None,
    agreeing_cells: np.ndarray | None,
    radius: float,
) -> Evidence:
    """What an alignment (``transform``: scanned frame -> photo frame) shows.

    A photo feature (``reference_xy``) is visible when the transform puts it inside the
    scanned frame (``frame``: height, width of the frame ``query_xy`` live in); it is confirmed
    at distance d when one of its two nearest scanned descriptors (``nearest``: distances and
    indices per photo feature), d bits away, lands within ``radius`` pixels of it. Textured
    cells are the photo's ``grid`` cells with some contrast, among ``visible_cells``; a plain
    background agrees with any other plain background and proves nothing.
    """
    distance, index = nearest
    confirmed = np.full(len(reference_xy), np.iinfo(np.int32).max, np.int64)
    if len(query_xy):
        for column in range(index.shape[1]):
            landed = project(transform, query_xy[index[:, column]])
            near = np.linalg.norm(landed - reference_xy, axis=1) <= radius
            confirmed = np.where(near, np.minimum(confirmed, distance[:, column]), confirmed)
    back = project(np.linalg.inv(transform), reference_xy)
    height, width = frame
    visible = (back[:, 0] >= 0) & (back[:, 0] < width) & (back[:, 1] >= 0) & (back[:, 1] < height)
    spots, distances = confirmed_spots(reference_xy, visible, confirmed)
    textured = dequantise(grid)[:, :, 3] >= TEXTURED_CONTRAST
    if visible_cells is not None:
        textured &= visible_cells
    agree = textured & agreeing_cells if agreeing_cells is not None else textured
    return Evidence(spots, distances, int(textured.sum()), int(agree.sum()))


def spots(xy: np.ndarray) -> np.ndarray:
    """One integer per SPACING x SPACING square of the frame a feature falls in."""
    cells = np.floor(np.asarray(xy, np.float64) / SPACING).astype(np.int64)
    return cells[:, 1] * 100_000 + cells[:, 0]


def log10_binomial_tail(k: int, n: int, p: float) -> float:
    """log10 P[Binomial(n, p) >= k], summed in log space (the terms underflow long before 0)."""
    return float(log10_binomial_tails([k], n, [p])[0])


def log10_binomial_tails(ks: Sequence[int], n: int, ps: Sequence[float]) -> np.ndarray:
    """log10 P[Binomial(n, p) >= k] for each pair of ``ks`` and ``ps``, in one pass: a match's
    evidence asks for one tail per distinct descriptor distance, dozens per alignment."""
    k = np.asarray(ks, np.int64)[:, None]
    p = np.asarray(ps, np.float64)[:, None]
    j = np.arange(n + 1)[None, :]
    log_factorial = _log_factorials(n)
    with np.errstate(divide="ignore"):
        terms = (
            log_factorial[n]
            - log_factorial[j]
            - log_factorial[n - j]
            + j * np.log(p)
            + (n - j) * np.log1p(-p)
        )
    terms = np.where(j >= k, terms, -np.inf)
    largest = terms.max(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        summed = largest[:, 0] + np.log(np.exp(terms - largest).sum(axis=1))
    tails = np.where(np.isfinite(largest[:, 0]), summed, -np.inf) / math.log(10)
    return np.where(k[:, 0] <= 0, 0.0, tails)


_LOG_FACTORIALS = np.zeros(1)


def _log_factorials(n: int) -> np.ndarray:
    """log(i!) for i = 0..n at least, grown as needed and kept."""
    global _LOG_FACTORIALS
    if len(_LOG_FACTORIALS) <= n:
        size = max(n + 1, 2 * len(_LOG_FACTORIALS), 4096)
        _LOG_FACTORIALS = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, size)))])
    return _LOG_FACTORIALS
