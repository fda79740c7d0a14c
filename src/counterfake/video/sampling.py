"""Which frames of a video are looked at: every scene change, and a steady rate between them,
never more than a cap per video.

A scene change (a cut in a compilation, a new photo in a slideshow) is sampled at once, so a
segment's edges are found to within a frame there; between changes a frame is sampled every
``1 / rate`` seconds, so a photo held for a second or two, a slow pan or a cross-fade is
still seen. A long video lowers the rate up front so that the cap covers all of it, rather
than sampling its beginning densely and its end not at all.

Only sampled frames are converted to RGB (a scan asks for them at the size it matches at, one
swscale pass from the decoder's pixels): the rest are seen as a 64x36 thumbnail of their luma.
The video's last frame, when it was not sampled, is taken at the end as a *final* sample:
not to be matched on its own, but to see how far what the samples before it showed goes on.
A cut between two samples that was not sampled itself (it came sooner than ``min_gap`` after
the last sample) is still noted on the next sample: a segment's edge is placed on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from counterfake.video.decode import Frame, Video


@dataclass(frozen=True)
class Sampling:
    """How densely a video is sampled."""

    rate: float = 1.0  # frames per second between scene changes
    max_samples: int = 600  # per video
    scene_change: float = 0.2  # share of the thumbnail that changed (scene_distance): a cut
    min_gap: float = 0.1  # seconds: no two samples closer than this (flashes, strobes)

    def rate_for(self, duration: float | None) -> float:
        """The steady rate for a video of this length: lowered so the cap covers all of it,
        with a third of the cap left for scene changes."""
        if duration is None or duration <= 0:
            return self.rate
        return min(self.rate, (self.max_samples * 2 / 3) / duration)


@dataclass
class Sample:
    """A sampled frame: its time, its pixels and why it was taken."""

    time: float
    index: int
    rgb: np.ndarray
    scene_change: bool  # taken because the picture changed, not because time passed
    cut_at: float | None = None  # a cut since the previous sample (this one's time if it is one)
    final: bool = False  # the video's last frame, taken after the others (see above)


CHANGED_LEVEL = 24.0  # brightness levels (0..255) by which a thumbnail pixel changes in a cut


def scene_distance(a: np.ndarray, b: np.ndarray) -> float:
    """How much of the picture changed between two thumbnails: the share of pixels whose
    brightness moved by more than CHANGED_LEVEL, after removing the change in mean brightness.

    A share, not a mean difference: a cut between two portrait photos letterboxed on black
    changes only the middle of the frame, and a mean over the whole frame diluted it below any
    useful threshold. A fade moves every pixel a little, and no pixel past the level.
    """
    moved = np.abs((a - a.mean()) - (b - b.mean()))
    return float((moved > CHANGED_LEVEL).mean())


class Sampler:
    """Decides, frame by frame in decoding order, which frames are sampled.

    A scene change is a frame that changed much (``scene_change``) after one that changed
    little: a cut, not the steady change of fast motion.

    What must hold: samples are at least ``min_gap`` apart, at most ``max_samples`` are taken,
    the first frame is always taken, and a gap longer than ``1 / rate`` has no sample only
    where the cap was reached.
    """

    def __init__(self, sampling: Sampling, duration: float | None) -> None:
        self.sampling = sampling
        self.interval = 1.0 / sampling.rate_for(duration)
        self.taken = 0
        self._last: float | None = None
        self._previous: np.ndarray | None = None
        self._calm = True  # the frame before changed little from its own predecessor
        self.cut_at: float | None = None  # the strongest cut since the last sample taken
        self._cut = 0.0  # ...and how much of the picture changed there
        self._taken_before = False  # the previous call took its frame: cut_at starts afresh

    def take(self, frame: Frame) -> bool | None:
        """None if the frame is not sampled; else whether it is a scene change."""
        thumbnail = frame.thumbnail()
        previous, self._previous = self._previous, thumbnail
        changed = scene_distance(previous, thumbnail) if previous is not None else 0.0
        # A cut is a spike after a calm frame: fast motion changes much of every frame, and
        # sampling each of them would multiply the work without finding an edge.
        cut = changed >= self.sampling.scene_change and self._calm
        self._calm = changed < self.sampling.scene_change / 2
        if self.taken >= self.sampling.max_samples:
            return None
        if self._taken_before:
            self.cut_at, self._cut, self._taken_before = None, 0.0, False
        if cut and changed > self._cut:
            self.cut_at, self._cut = frame.time, changed
        last = self._last
        if last is not None:
            elapsed = frame.time - last
            if elapsed < self.interval - 1e-6 and not (cut and elapsed >= self.sampling.min_gap):
                return None
        self._last = frame.time
        self.taken += 1
        self._taken_before = True
        return cut


def sample_frames(
    video: Video,
    sampling: Sampling | None = None,
    *,
    skip_unreferenced: bool = False,
    max_side: int | None = None,
) -> Iterator[Sample]:
    """The sampled frames of an open video, in order (see :class:`Sampler`), then its last
    frame as a final sample; each converted to RGB no larger than ``max_side`` on the longer
    side when it is given. The video is decoded to its end even past the cap, so a truncated
    or corrupt end is still reported."""
    sampling = sampling or Sampling()
    sampler = Sampler(sampling, video.info.duration)
    last: Frame | None = None  # the latest frame decoded after the last sample
    taken_at = 0.0
    for frame in video.frames(skip_unreferenced=skip_unreferenced):
        cut = sampler.take(frame)
        if cut is None:
            last = frame
            continue
        taken_at, last = frame.time, None
        yield Sample(frame.time, frame.index, _converted(frame, max_side), cut, sampler.cut_at)
    if (
        last is not None
        and last.time - taken_at >= sampling.min_gap
        and sampler.taken < sampling.max_samples
    ):
        rgb = _converted(last, max_side)
        yield Sample(last.time, last.index, rgb, False, sampler.cut_at, final=True)


def _converted(frame: Frame, max_side: int | None) -> np.ndarray:
    """The frame's RGB, reduced in the same pass when it is larger than ``max_side``."""
    longer = max(frame.width, frame.height)
    if max_side is None or longer <= max_side:
        return frame.rgb()
    scale = max_side / longer
    width = max(1, round(frame.width * scale))
    return frame.rgb_scaled(width, max(1, round(frame.height * scale)))
