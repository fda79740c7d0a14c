"""How much an alignment proves: its number of false alarms (NFA), a-contrario.

Verification finds a transform that carries the scanned image's features onto a registered
photo's. That alone proves little: another woman photographed in the same pose on the same
plain background, or another shot of the same street, also aligns, because the layout is the
same. What a different photo cannot reproduce is the fine detail: its features land in the
same places but their descriptors (256 bits describing the 31-pixel patch around each point)
differ by many bits, while a copy keeps them within a few bits, even after recompression.

So the evidence is counted like this (the a-contrario approach of Moisan & Stival, 2004, and
Rabin, Delon & Gousseau, 2009, with a background learnt from data as the latter do):

1. ``n``: the registered photo's features that lie inside the scanned image under the
   transform. Features closer than ``SPACING`` pixels to each other count once (they describe
   the same spot: a cluster of corners on one small object, a moon in a black sky, is one piece
   of evidence, not twenty).
2. ``k(d)``: those confirmed, at each descriptor distance level ``d``: a scanned feature lands
   within the verification radius of where the transform puts it, at most ``d`` bits away.
3. The background hypothesis H0: the scanned image is a *different* photo, however alike.
   Under H0 a visible feature is confirmed at level ``d`` with probability at most
   ``BACKGROUND_RATE[d]``, measured on aligned pairs of different photos (studio photos of
   different women in the same pose, the hardest such pairs in ../shared/data; the figures
   are in docs/matching.md).
4. ``NFA = tests x min over d of P[Binomial(n, BACKGROUND_RATE[d]) >= k(d)]``, with
   ``tests = 2 x registry size x len(LEVELS)``: every (photo, orientation) a scanned image could
   be compared with, and every level looked at.

NFA is the number of unrelated registered photos expected to align this well by chance. A match
is reported only when it is below ``MAX_NFA``; the bound holds whatever the registry's size,
because the size is in ``tests``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

LEVELS = (16, 24, 32, 48, 64)  # descriptor distance levels, bits of 256
# H0's confirmation rate per level: how often a visible spot of a different photo, aligned with
# the registered one, is confirmed. Measured on 101 aligned pairs of different studio photos
# (women in the same pose; pooled rates 0.0011, 0.0117, 0.0318, 0.0801, 0.100) and set at
# about 1.5 times those, rounded up; see docs/matching.md.
BACKGROUND_RATE = {16: 0.002, 24: 0.018, 32: 0.05, 48: 0.12, 64: 0.15}
SPACING = 8.0  # pixels of the 512-pixel reference frame: features closer are one spot
MAX_NFA = 0.01  # fewer than one scanned image in a hundred aligns this well by chance


@dataclass(frozen=True)
class Evidence:
    """What an alignment shows: ``visible`` spots, ``confirmed[i]`` of them at ``LEVELS[i]``."""

    visible: int
    confirmed: tuple[int, ...]

    def log10_nfa(self, registry_size: int) -> float:
        """log10 of the number of false alarms in a registry of ``registry_size`` photos."""
        tests = 2 * max(registry_size, 1) * len(LEVELS)
        tail = min(
            log10_binomial_tail(k, self.visible, BACKGROUND_RATE[level])
            for level, k in zip(LEVELS, self.confirmed, strict=True)
        )
        return math.log10(tests) + tail


def evidence(photo_xy: np.ndarray, visible: np.ndarray, confirmed_distance: np.ndarray) -> Evidence:
    """Count the spots of the registered photo that are visible and confirmed.

    ``photo_xy`` (n, 2): the registered photo's features in its frame; ``visible`` (n,): which of
    them lie inside the scanned image under the transform; ``confirmed_distance`` (n,): the
    descriptor distance of the closest scanned feature that lands where the transform puts each
    one (a large value where none does).
    """
    spot = _spots(photo_xy)
    seen = np.unique(spot[visible])
    confirmed = tuple(
        len(np.unique(spot[visible & (confirmed_distance <= level)])) for level in LEVELS
    )
    return Evidence(len(seen), confirmed)


def _spots(xy: np.ndarray) -> np.ndarray:
    """One integer per SPACING x SPACING square of the frame a feature falls in."""
    cells = np.floor(np.asarray(xy, np.float64) / SPACING).astype(np.int64)
    return cells[:, 1] * 100_000 + cells[:, 0]


def log10_binomial_tail(k: int, n: int, p: float) -> float:
    """log10 P[Binomial(n, p) >= k], summed in log space (the terms underflow long before 0)."""
    if k <= 0:
        return 0.0
    if k > n:
        return -math.inf
    log_p, log_q = math.log(p), math.log1p(-p)
    terms = [
        math.lgamma(n + 1)
        - math.lgamma(j + 1)
        - math.lgamma(n - j + 1)
        + j * log_p
        + (n - j) * log_q
        for j in range(k, n + 1)
    ]
    largest = max(terms)
    return (largest + math.log(sum(math.exp(t - largest) for t in terms))) / math.log(10)
