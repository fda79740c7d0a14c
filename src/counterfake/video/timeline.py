"""Chaining frame matches into time segments: where in a scanned video a registered video (or
photo) is shown, and which part of the registered video that is.

Each sampled frame of a scanned video is matched like a photo (verify, decide, with its number
of false alarms), so every hit is already proof that the frame shows that registered frame. A
registered video's hits are then chained: a chain is a run of hits that move forward together
in both timelines, at a speed between MIN_SPEED and MAX_SPEED (a clip slowed or sped up) and
with no gap longer than ``max_gap`` seconds between them. The longest chain is a segment; its
hits are taken out, and the next chain is the next segment (a compilation can show a clip twice,
or two parts of it).

A segment's edges are placed between its first (last) hit and the sample before (after) it:
on the cut between them when there is one (sampled or not: sampling.py notes the cut on the
next sample), since a cut, as compilations are made of, is where the clip begins or ends;
else halfway.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_SPEED = 0.7  # registered seconds per scanned second, at least (a clip played at 1.4x)...
MAX_SPEED = 1.45  # ...and at most (played at 0.7x)
TIME_SLACK = 1.1  # seconds: registered frames are sampled about once a second


@dataclass(frozen=True)
class Hit:
    """One sampled frame of the scanned video verified to show one registered frame."""

    sample: int  # the sample's position among the scanned video's samples
    scan_time: float
    registered_time: float
    score: float
    manipulated: bool
    altered_fraction: float
    log10_nfa: float
    inliers: int
    proven: bool = True  # decided on its own; False for a track's continuation (looking.py)


@dataclass(frozen=True)
class Segment:
    """A stretch of the scanned video showing a stretch of the registered video."""

    scan: tuple[float, float]
    registered: tuple[float, float]
    hits: tuple[Hit, ...]

    def iou(self, other: tuple[float, float]) -> float:
        """Intersection over union of the scanned range with another range."""
        return range_iou(self.scan, other)


def range_iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else float(a == b)


def chains(hits: list[Hit], max_gap: float) -> list[list[Hit]]:
    """Split hits into chains, longest first (see the module's description).

    What must hold: within a chain, scanned and registered times both increase (registered
    times may repeat only within TIME_SLACK), every step's speed is in [MIN_SPEED, MAX_SPEED]
    up to TIME_SLACK, and no hit is in two chains.
    """
    left = sorted(hits, key=lambda h: (h.scan_time, -h.score))
    found = []
    while left:
        best = _longest_chain(left, max_gap)
        found.append(best)
        taken = {id(h) for h in best}
        used = {h.sample for h in best}
        # A sample in the chain is spent: its other hits on this video were alternatives.
        left = [h for h in left if id(h) not in taken and h.sample not in used]
    return found


def _longest_chain(hits: list[Hit], max_gap: float) -> list[Hit]:
    """The chain with the most hits, by dynamic programming over hits sorted by scanned time.

    Among chains as long, the one whose steps keep closest to the original speed wins (then
    the higher total score): a picture held still matches several registered frames equally,
    and without a preference its registered range would drift anywhere within the hold.
    """
    count = len(hits)
    length = np.ones(count)
    drift = np.zeros(count)  # sum over the chain's steps of |registered step - scanned step|
    total = np.array([h.score for h in hits])
    before = np.full(count, -1)
    for j in range(count):
        for i in range(j - 1, -1, -1):
            step = hits[j].scan_time - hits[i].scan_time
            if step > max_gap:
                break
            if step <= 0 or not _follows(hits[i], hits[j], step):
                continue
            moved = hits[j].registered_time - hits[i].registered_time
            candidate = (length[i] + 1, -(drift[i] + abs(moved - step)), total[i] + hits[j].score)
            if candidate > (length[j], -drift[j], total[j]):
                length[j], total[j], before[j] = candidate[0], candidate[2], i
                drift[j] = -candidate[1]
    end = int(np.lexsort((total, -drift, length))[-1])
    chain = []
    while end >= 0:
        chain.append(hits[end])
        end = int(before[end])
    return chain[::-1]


def _follows(a: Hit, b: Hit, scan_step: float) -> bool:
    return in_step(scan_step, b.registered_time - a.registered_time)


def in_step(scan_step: float, moved: float) -> bool:
    """Whether a step of ``scan_step`` scanned seconds that moved ``moved`` registered seconds
    can be part of a chain."""
    return MIN_SPEED * scan_step - TIME_SLACK <= moved <= MAX_SPEED * scan_step + TIME_SLACK and (
        moved > -TIME_SLACK / 2
    )


def segment(
    chain: list[Hit],
    sample_times: list[float],
    cuts: list[float | None],
    scan_duration: float,
    registered_duration: float,
) -> Segment:
    """The segment a chain covers, its edges placed as the module describes, and the
    registered range mapped through the chain's fitted speed and offset."""
    first, last = chain[0].sample, chain[-1].sample
    start = _edge(sample_times, cuts, first, first - 1)
    end = _edge(sample_times, cuts, last + 1, last) if last + 1 < len(sample_times) else None
    end = scan_duration if end is None else end
    start = 0.0 if start is None else start
    speed, offset = _fit(chain)
    registered = (
        float(np.clip(speed * start + offset, 0.0, registered_duration)),
        float(np.clip(speed * end + offset, 0.0, registered_duration)),
    )
    return Segment((round(start, 3), round(end, 3)), _rounded(registered), tuple(chain))


def _edge(times: list[float], cuts: list[float | None], cut_at: int, before: int) -> float | None:
    """Where a segment's edge lies between sample ``before`` and the sample after it: on the
    cut noted on the later sample, else halfway; None past the start of the video."""
    if before < 0:
        return None
    cut = cuts[cut_at]
    if cut is not None and times[before] < cut <= times[before + 1]:
        return cut
    return (times[before] + times[before + 1]) / 2


def _fit(chain: list[Hit]) -> tuple[float, float]:
    """registered = speed * scanned + offset, fitted to the chain (speed 1 when it is short)."""
    scan = np.array([h.scan_time for h in chain])
    registered = np.array([h.registered_time for h in chain])
    if len(chain) >= 3 and np.ptp(scan) >= 3.0:
        speed = float(np.clip(np.polyfit(scan, registered, 1)[0], MIN_SPEED, MAX_SPEED))
    else:
        speed = 1.0
    return speed, float(np.median(registered - speed * scan))


def _rounded(pair: tuple[float, float]) -> tuple[float, float]:
    return round(pair[0], 3), round(pair[1], 3)
