"""Matching a scanned video against registered videos and photos.

Every sampled frame goes through the photo chain (candidates, verify, decide): a frame hit is
a registered frame or photo verified in it with a number of false alarms below the bound for
the registry's size. A video of n samples is n chances for a coincidence, so a registered
video or photo is reported only when its best hit's number of false alarms is below the
bound divided by n: a video's expected false matches stay where a photo's are. (Several hits
in a row are not counted as independent evidence: the frames of a still scene are alike, and
so would be their coincidences.) Then:

- hits on a registered video's frames are chained into segments (timeline.py): kind
  ``manipulated`` when most of a segment's frames show an altered region, else ``repost``;
- hits on a registered photo become ``contains_photo``: the runs of samples showing it, the
  frame where it was seen best, and that frame's mask when the photo was altered there.

Only one sampled frame is held at a time: memory stays flat however long the video.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from counterfake.evidence import MAX_NFA
from counterfake.matching import Match
from counterfake.registry import VideoFrame
from counterfake.signature.extract import Query, make_query
from counterfake.video.decode import Video, VideoLimits
from counterfake.video.sampling import Sampling, sample_frames
from counterfake.video.timeline import Hit, Segment, chains, segment

VideoKind = Literal["repost", "manipulated", "contains_photo"]


class FrameMatcher(Protocol):
    """What matches one sampled frame: a Matcher, or one wrapped (the service's slots)."""

    def match(self, query: Query) -> list[Match]: ...


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


@dataclass
class _Best:
    """The best frame hit of one target so far (its mask kept only if altered)."""

    time: float
    match: Match


def scan_video(
    path: str,
    matcher: FrameMatcher,
    owners: Callable[[int], list[int]],
    frames: dict[int, VideoFrame],
    video_durations: dict[int, float],
    *,
    limits: VideoLimits | None = None,
    sampling: Sampling | None = None,
) -> ScannedVideo:
    """Match every sampled frame of the video at ``path``; VideoError if it cannot be decoded.

    ``owners`` maps an index entry to the registered photos it stands for, ``frames`` says
    which of those are a registered video's frames (and when), ``video_durations`` how long
    each registered video is.
    """
    sampling = sampling or Sampling()
    hits: dict[int, list[Hit]] = defaultdict(list)  # registered video -> its frame hits
    photo_samples: dict[int, list[Hit]] = defaultdict(list)  # registered photo -> hits
    best: dict[tuple[bool, int], _Best] = {}  # (is a photo, id) -> its highest-scoring hit
    altered: dict[tuple[bool, int], _Best] = {}  # ...its most altered manipulated hit
    times: list[float] = []
    cuts: list[bool] = []
    with Video(path, limits) as video:
        for number, sample in enumerate(sample_frames(video, sampling, skip_unreferenced=True)):
            times.append(sample.time)
            cuts.append(sample.scene_change)
            for match in matcher.match(make_query(sample.rgb)):
                if match.kind == "same_scene":
                    continue
                for owner in owners(match.photo_id):
                    frame = frames.get(owner)
                    hit = Hit(
                        number,
                        sample.time,
                        frame.time if frame else 0.0,
                        match.score,
                        match.kind == "manipulated",
                        match.altered_fraction,
                        match.log10_nfa,
                        match.inliers,
                    )
                    key = (frame is None, frame.video_id if frame else owner)
                    (photo_samples if frame is None else hits)[key[1]].append(hit)
                    kept = best.get(key)
                    if kept is None or match.score > kept.match.score:
                        best[key] = _Best(sample.time, match)
                    kept = altered.get(key)
                    if match.kind == "manipulated" and (
                        kept is None or match.altered_fraction > kept.match.altered_fraction
                    ):
                        altered[key] = _Best(sample.time, match)
        duration = max(video.info.duration or 0.0, times[-1] if times else 0.0)
    bound = math.log10(MAX_NFA) - math.log10(max(1, len(times)))
    matches = [
        _video_match(video_id, found, times, cuts, duration, video_durations, altered)
        for video_id, found in hits.items()
        if min(h.log10_nfa for h in found) <= bound
    ]
    matches += [
        _photo_match(photo_id, found, times, cuts, duration, best[(True, photo_id)])
        for photo_id, found in photo_samples.items()
        if min(h.log10_nfa for h in found) <= bound
    ]
    matches.sort(key=lambda m: -m.score)
    return ScannedVideo(duration, times, matches)


def _max_gap(times: list[float]) -> float:
    """Samples may be missed (a blurred frame, a caption across the face): a chain bridges up
    to three sampling intervals."""
    steps = np.diff(times) if len(times) > 1 else np.array([1.0])
    return 3.0 * float(np.median(steps)) + 0.5


def _video_match(
    video_id: int,
    hits: list[Hit],
    times: list[float],
    cuts: list[bool],
    duration: float,
    durations: dict[int, float],
    altered: dict[tuple[bool, int], _Best],
) -> VideoMatch:
    """A registered video shown in the scanned one: its segments; ``manipulated`` when most
    chained frames show an altered region (then the most altered frame and its mask)."""
    found = chains(hits, _max_gap(times))
    segments = [segment(c, times, cuts, duration, durations[video_id]) for c in found]
    segments.sort(key=lambda s: s.scan[0])
    chained = [h for c in found for h in c]
    manipulated = sum(h.manipulated for h in chained) * 2 > len(chained)
    top = max(chained, key=lambda h: h.score)
    worst = altered.get((False, video_id)) if manipulated else None
    return VideoMatch(
        target=video_id,
        is_photo=False,
        kind="manipulated" if manipulated else "repost",
        score=top.score,
        log10_nfa=min(h.log10_nfa for h in chained),
        segments=segments,
        frame_time=worst.time if worst else top.scan_time,
        altered_fraction=worst.match.altered_fraction if worst else 0.0,
        inliers=top.inliers,
        mask=worst.match.mask if worst else None,
    )


def _photo_match(
    photo_id: int,
    hits: list[Hit],
    times: list[float],
    cuts: list[bool],
    duration: float,
    top: _Best,
) -> VideoMatch:
    """A registered photo shown in the video: the runs of samples that show it (a run bridges
    one missed sample), and the frame where it was seen best, with its mask if altered."""
    samples = sorted({h.sample for h in hits})
    runs: list[list[int]] = []
    for number in samples:
        if runs and number - runs[-1][-1] <= 2:
            runs[-1].append(number)
        else:
            runs.append([number])
    by_sample = {h.sample: h for h in hits}
    segments = []
    for run in runs:
        shown = segment([by_sample[n] for n in run], times, cuts, duration, 0.0)
        segments.append(Segment(shown.scan, (0.0, 0.0), shown.hits))
    return VideoMatch(
        target=photo_id,
        is_photo=True,
        kind="contains_photo",
        score=top.match.score,
        log10_nfa=min(h.log10_nfa for h in hits),
        segments=segments,
        frame_time=top.time,
        altered_fraction=top.match.altered_fraction,
        inliers=top.match.inliers,
        mask=top.match.mask,
    )
