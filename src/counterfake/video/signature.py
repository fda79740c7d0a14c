"""What is kept of a registered video: its sampled frames' signatures with their times, its
vPDQ hash and its MD5, and no pixels.

A frame's signature is a photo's signature (the same local features, grid and face box) with
fewer features (FRAME_FEATURES), so that a registered video is matched frame by frame by the
same chain as a photo, and a registered video's frame can be found inside another video or a
still (a screenshot of the clip). Each frame's signature is labelled ``label@12.00s`` and named
by a SHA-256 of the video's and the time (:func:`frame_sha256`), so the registry can hold it
as it holds a photo.

The video is decoded once: the sampler picks the frames that get a signature, and every
``seconds_per_hash`` the frame vPDQ asks for is hashed on the way.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from counterfake.signature.extract import Signature, make_signature
from counterfake.video.decode import Video, VideoLimits
from counterfake.video.sampling import Sampler, Sampling
from counterfake.video.vpdq import SECONDS_PER_HASH, VpdqFeature, frame_feature

FRAME_FEATURES = 256  # features per orientation of a registered video's frame (a photo: 512)
_READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class VideoSignature:
    """Everything counterfake keeps of a registered video.

    What must hold: ``times`` and ``frames`` have one entry per sampled frame, in increasing
    time; ``vpdq`` is Meta's vPDQ of the file (empty for an animated image, which vPDQ does not
    hash); ``sha256`` and ``md5`` are of the file's bytes.
    """

    label: str
    sha256: str
    md5: str  # StopNCII's video signal: matches only the very same file
    duration: float
    width: int
    height: int
    times: tuple[float, ...]
    frames: tuple[Signature, ...]
    vpdq: tuple[VpdqFeature, ...]


def frame_label(label: str, time: float) -> str:
    """The label of a video's frame: the video's label and the time, e.g. ``clip.mp4@12.00s``."""
    return f"{label}@{time:.2f}s"


def frame_sha256(video_sha256: str, time: float) -> str:
    """A name for a video's frame, unique per video and time (the registry keys photos by it)."""
    return hashlib.sha256(f"{video_sha256}@{time:.3f}".encode()).hexdigest()


def file_digests(path: str | os.PathLike) -> tuple[str, str]:
    """(SHA-256, MD5) of a file, read in chunks (a video can be gigabytes)."""
    sha256, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as stream:
        while chunk := stream.read(_READ_CHUNK):
            sha256.update(chunk)
            md5.update(chunk)
    return sha256.hexdigest(), md5.hexdigest()


def make_video_signature(
    path: str | os.PathLike,
    label: str,
    *,
    limits: VideoLimits | None = None,
    sampling: Sampling | None = None,
) -> VideoSignature:
    """Decode a video once and keep its signature; VideoError if it cannot be decoded."""
    with Video(path, limits) as video:
        sha256, md5 = file_digests(path)
        sampler = Sampler(sampling or Sampling(), video.info.duration)
        rate = video.stream_rate
        vpdq_step = max(1, int(SECONDS_PER_HASH * rate)) if rate else 0
        times: list[float] = []
        frames: list[Signature] = []
        vpdq: list[VpdqFeature] = []
        end = 0.0
        for frame in video.frames():
            end = frame.time
            if vpdq_step and frame.index % vpdq_step == 0:
                vpdq.append(frame_feature(video, frame, rate))
            if sampler.take(frame) is None:
                continue
            times.append(frame.time)
            frames.append(
                make_signature(
                    frame.rgb(),
                    label=frame_label(label, frame.time),
                    sha256=frame_sha256(sha256, frame.time),
                    feature_count=FRAME_FEATURES,
                )
            )
        step = 1 / video.info.fps if video.info.fps else 0.0
        return VideoSignature(
            label=label,
            sha256=sha256,
            md5=md5,
            duration=max(video.info.duration or 0.0, end + step),
            width=video.info.width,
            height=video.info.height,
            times=tuple(times),
            frames=tuple(frames),
            vpdq=tuple(vpdq),
        )
