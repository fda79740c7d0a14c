"""Matching a scanned video against registered videos and photos.

Every sampled frame goes through the photo chain (candidates, verify, decide): a frame hit is
a registered frame or photo verified in it with a number of false alarms below the bound for
the registry's size. A video of n samples is n chances for a coincidence, so a registered
video or photo is reported only when its best hit's number of false alarms is below the
bound divided by n: a video's expected false matches stay where a photo's are. (Several hits
in a row are not counted as independent evidence: the frames of a still scene are alike, and
so would be their coincidences.) Then:

- hits on a registered video's frames are chained into segments (timeline.py): kind
  ``manipulated`` when most of the decided hits chained show an altered region, else
  ``repost``;
- hits on a registered photo become ``contains_photo``: the runs of samples showing it, the
  frame where it was seen best, and that frame's mask when the photo was altered there.

Which candidates a sample verifies, and how a track's edges are continued, is looking.py's
part. At most two sampled frames are held at a time (the one matched and the one before it):
memory stays flat however long the video.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from typing import Literal

import cv2
import numpy as np

from counterfake.evidence import MAX_NFA
from counterfake.matching import Match, Matcher
from counterfake.registered import VideoFrame
from counterfake.signature.extract import QUERY_MAX_SIDE, make_query
from counterfake.video.decode import Video, VideoLimits
from counterfake.video.looking import FrameHit, FrameLooker, Target
from counterfake.video.sampling import Sampling, sample_frames
from counterfake.video.timeline import Hit, Segment, chains, segment

VideoKind = Literal["repost", "manipulated", "contains_photo"]


@dataclass
class VideoMatch:
    """A registered video or photo found in a scanned video."""

    target: int  # a registered video's id, or a registered photo's id (``is_photo``)
    is_photo: bool
    kind: VideoKind
    score: float
    log10_nfa: float
    segments: list[Segment]
    frame_time: float  # the scanned frame where it was seen best
    altered_fraction: float
    inliers: int
    mask: np.ndarray | None = field(default=None, repr=False)  # that frame's, if altered

    @property
    def nfa(self) -> float:
        return 10.0**self.log10_nfa if self.log10_nfa > -300 else 0.0


@dataclass
class ScannedVideo:
    """What scanning one video found, with the samples it looked at."""

    duration: float
    sample_times: list[float]
    matches: list[VideoMatch]


def scan_video(
    path: str,
    matcher: Matcher,
    owners: Callable[[int], list[int]],
    frames: dict[int, VideoFrame],
    video_durations: dict[int, float],
    *,
    limits: VideoLimits | None = None,
    sampling: Sampling | None = None,
    slot: Callable[[], AbstractContextManager[object]] | None = None,
) -> ScannedVideo:
    """Match every sampled frame of the video at ``path``; VideoError if it cannot be decoded.

    ``owners`` maps an index entry to the registered photos it stands for, ``frames`` says
    which of those are a registered video's frames (and when), ``video_durations`` how long
    each registered video is; ``slot`` is held while a frame is matched (looking.py).
    """
    sampling = sampling or Sampling()
    looker = FrameLooker(matcher, owners, frames, slot)
    hits: dict[Target, list[Hit]] = defaultdict(list)
    best: dict[Target, tuple[float, Match]] = {}  # its highest-scoring decided hit
    altered: dict[Target, tuple[float, Match]] = {}  # ...its most altered manipulated hit
    times: list[float] = []
    cuts: list[float | None] = []
    with Video(path, limits) as video:
        size = (video.info.width, video.info.height)
        samples = sample_frames(video, sampling, skip_unreferenced=True, max_side=QUERY_MAX_SIDE)
        for number, sample in enumerate(samples):
            times.append(sample.time)
            cuts.append(sample.cut_at)
            if sample.final and not looker.continues_into(number):
                continue
            query = make_query(sample.rgb)
            for found in looker.look(number, sample.time, query, final=sample.final):
                match = found.match
                hits[found.target].append(_hit(found))
                if match is None:
                    continue
                kept = best.get(found.target)
                if kept is None or match.score > kept[1].score:
                    best[found.target] = (found.time, match)
                kept = altered.get(found.target)
                if match.kind == "manipulated" and (
                    kept is None or match.altered_fraction > kept[1].altered_fraction
                ):
                    altered[found.target] = (found.time, match)
        duration = max(video.info.duration or 0.0, times[-1] if times else 0.0)
    bound = math.log10(MAX_NFA) - math.log10(max(1, len(times)))
    reported = {
        target: sorted(found, key=lambda h: h.sample)
        for target, found in hits.items()
        if min(h.log10_nfa for h in found) <= bound
    }
    matches = [
        _photo_match(target[1], found, times, cuts, duration, best[target])
        if target[0]
        else _video_match(target[1], found, times, cuts, duration, video_durations, altered)
        for target, found in reported.items()
    ]
    matches = [_in_frame(m, size) for m in matches if m is not None]
    matches.sort(key=lambda m: -m.score)
    return ScannedVideo(duration, times, matches)


def _hit(found: FrameHit) -> Hit:
    """A timeline hit; a continuation is not proved (its log10_nfa is 0: it counts for no
    report) and shows no decided alteration."""
    match = found.match
    return Hit(
        found.sample,
        found.time,
        found.registered_time,
        match.score if match else 0.0,
        match is not None and match.kind == "manipulated",
        match.altered_fraction if match else 0.0,
        match.log10_nfa if match else 0.0,
        match.inliers if match else 0,
        proven=match is not None,
    )


def _in_frame(match: VideoMatch, size: tuple[int, int]) -> VideoMatch:
    """The match with its mask in the video's own pixels (frames are matched reduced)."""
    mask = match.mask
    if mask is None or (mask.shape[1], mask.shape[0]) == size or min(size) < 1:
        return match
    return replace(match, mask=cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST))


def _max_gap(times: list[float]) -> float:
    """Samples may be missed (a blurred frame, a caption across the face): a chain bridges up
    to three sampling intervals."""
    steps = np.diff(times) if len(times) > 1 else np.array([1.0])
    return 3.0 * float(np.median(steps)) + 0.5


def _video_match(
    video_id: int,
    hits: list[Hit],
    times: list[float],
    cuts: list[float | None],
    duration: float,
    durations: dict[int, float],
    altered: dict[Target, tuple[float, Match]],
) -> VideoMatch:
    """A registered video shown in the scanned one: its segments (each holding a proved hit;
    continuations only widen them); ``manipulated`` when most proved hits chained show an
    altered region (then the most altered frame and its mask)."""
    found = [c for c in chains(hits, _max_gap(times)) if any(h.proven for h in c)]
    segments = [segment(c, times, cuts, duration, durations[video_id]) for c in found]
    segments.sort(key=lambda s: s.scan[0])
    proven = [h for c in found for h in c if h.proven]
    manipulated = sum(h.manipulated for h in proven) * 2 > len(proven)
    top = max(proven, key=lambda h: h.score)
    worst = altered.get((False, video_id)) if manipulated else None
    return VideoMatch(
        target=video_id,
        is_photo=False,
        kind="manipulated" if manipulated else "repost",
        score=top.score,
        log10_nfa=min(h.log10_nfa for h in proven),
        segments=segments,
        frame_time=worst[0] if worst else top.scan_time,
        altered_fraction=worst[1].altered_fraction if worst else 0.0,
        inliers=top.inliers,
        mask=worst[1].mask if worst else None,
    )


def _photo_match(
    photo_id: int,
    hits: list[Hit],
    times: list[float],
    cuts: list[float | None],
    duration: float,
    top: tuple[float, Match],
) -> VideoMatch:
    """A registered photo shown in the video: the runs of samples that show it (a run bridges
    one missed sample, and holds a proved hit), and the frame where it was seen best, with its
    mask if altered."""
    by_sample: dict[int, Hit] = {}
    for hit in hits:  # a proved hit over a continuation of the same sample
        if hit.sample not in by_sample or hit.proven:
            by_sample[hit.sample] = hit
    runs: list[list[int]] = []
    for number in sorted(by_sample):
        if runs and number - runs[-1][-1] <= 2:
            runs[-1].append(number)
        else:
            runs.append([number])
    segments = []
    for run in runs:
        if not any(by_sample[n].proven for n in run):
            continue
        shown = segment([by_sample[n] for n in run], times, cuts, duration, 0.0)
        segments.append(Segment(shown.scan, (0.0, 0.0), shown.hits))
    time, match = top
    return VideoMatch(
        target=photo_id,
        is_photo=True,
        kind="contains_photo",
        score=match.score,
        log10_nfa=min(h.log10_nfa for h in hits),
        segments=segments,
        frame_time=time,
        altered_fraction=match.altered_fraction,
        inliers=match.inliers,
        mask=match.mask,
    )
