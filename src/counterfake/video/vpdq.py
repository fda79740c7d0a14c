"""vPDQ, Meta's video hash: the PDQ hash of one frame per second, with its frame number,
quality and time, as hash-sharing programmes (ThreatExchange, Hasher-Matcher-Actioner) exchange
it for videos.

An independent implementation of Meta's published algorithm (``vpdq/cpp`` in
facebook/ThreatExchange, ``hashVideoFile``), so that hashes agree with Meta's ``vpdq`` package
without building it against system FFmpeg headers:

1. Frames are numbered in decoding output order from 0. The frame rate is the stream's average
   rate (its real base rate when that is unknown); ``step = int(seconds_per_hash * rate)``,
   at least 1.
2. Every frame whose number is a multiple of ``step`` is converted to RGB24 at the stream's
   size with swscale's area filter.
3. Its PDQ hash and quality are computed on the whole frame (no 512-pixel resize first).
4. Its timestamp is ``frame_number / rate`` in single precision.

Matching follows Meta's brute-force matcher: a frame matches when another video has a frame of
quality >= 50 within Hamming distance 31; two videos match when at least 80% of the query's
(distinct, good-quality) frames do.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass

import av.error
import numpy as np

from counterfake.signature.pdq import PdqHash, hamming_distance, pdq_hash
from counterfake.video.decode import Frame, Video, VideoError, VideoLimits, problem_text

SECONDS_PER_HASH = 1.0
QUALITY_THRESHOLD = 50  # ThreatExchange's VPDQ_QUALITY_THRESHOLD
DISTANCE_THRESHOLD = 31  # ...VPDQ_DISTANCE_THRESHOLD
QUERY_MATCH_PERCENT = 80.0  # ...VPDQ_QUERY_MATCH_THRESHOLD_PERCENT


@dataclass(frozen=True)
class VpdqFeature:
    """One hashed frame."""

    hash: PdqHash
    frame_number: int
    timestamp: float

    @property
    def quality(self) -> int:
        return self.hash.quality

    def line(self) -> str:
        """Meta's hash-file line: ``frame,quality,hash,timestamp`` (``vpdq-hash-video``)."""
        return f"{self.frame_number},{self.quality},{self.hash.hex()},{self.timestamp:.3f}"

    def compact(self) -> str:
        """ThreatExchange's signal form of one frame: ``hash,quality,timestamp``
        (``VpdqCompactFeature.__str__``, whose timestamp format keeps 3 significant digits)."""
        return f"{self.hash.hex()},{self.quality},{self.timestamp:.3}"


def vpdq_hash(
    path: str | os.PathLike,
    *,
    seconds_per_hash: float = SECONDS_PER_HASH,
    limits: VideoLimits | None = None,
) -> list[VpdqFeature]:
    """The vPDQ hash of a video file; VideoError if it cannot be decoded to the end."""
    with Video(path, limits) as video:
        if video.is_animation:
            raise VideoError(path, "vPDQ hashes video streams, not animated images")
        rate = video.stream_rate
        if not rate:
            raise VideoError(path, "declares no frame rate (vPDQ needs one)")
        step = max(1, int(seconds_per_hash * rate))
        return [frame_feature(video, f, rate) for f in video.frames() if f.index % step == 0]


def frame_feature(video: Video, frame: Frame, rate: float) -> VpdqFeature:
    """The vPDQ feature of one decoded frame of ``video`` (numbered at ``rate``)."""
    try:
        rgb = frame.rgb_scaled(video.info.width, video.info.height)
    except (av.error.FFmpegError, ValueError) as error:
        raise VideoError(
            video.path, f"frame {frame.index} cannot be converted ({problem_text(error)})"
        ) from None
    timestamp = float(np.float32(frame.index) / np.float32(rate))
    return VpdqFeature(pdq_hash(rgb, downsample=False), frame.index, timestamp)


def features_to_json(features: Iterable[VpdqFeature]) -> str:
    """ThreatExchange's vPDQ signal string: a JSON list of ``hash,quality,timestamp``."""
    return json.dumps([f.compact() for f in features])


def features_from_json(text: str) -> list[VpdqFeature]:
    """Read ThreatExchange's vPDQ signal string; ValueError naming the bad entry."""
    try:
        entries = json.loads(text or "[]")
    except json.JSONDecodeError as error:
        raise ValueError(f"a vPDQ signal is a JSON list ({error})") from None
    if not isinstance(entries, list):
        raise ValueError("a vPDQ signal is a JSON list of 'hash,quality,timestamp'")
    features = []
    for number, entry in enumerate(entries):
        parts = entry.split(",") if isinstance(entry, str) else []
        try:
            hex_hash, quality, timestamp = parts
            time = float(timestamp)
            if not time >= 0:
                raise ValueError("negative timestamp")
            features.append(VpdqFeature(PdqHash.from_hex(hex_hash, int(quality)), number, time))
        except ValueError as error:
            raise ValueError(f"vPDQ entry {number + 1} ({str(entry)[:80]!r}): {error}") from None
    return features


def feature_from_line(line: str) -> VpdqFeature:
    """Read one line of Meta's hash file (``frame,quality,hash,timestamp``); ValueError if it
    is not one."""
    parts = line.strip().split(",") if isinstance(line, str) else []
    if len(parts) != 4:
        raise ValueError(f"a vPDQ line is frame,quality,hash,timestamp, not {str(line)[:80]!r}")
    frame, quality, hex_hash, timestamp = parts
    time = float(timestamp)
    if int(frame) < 0 or not time >= 0:
        raise ValueError(f"a vPDQ line has a negative frame or time: {line[:80]!r}")
    return VpdqFeature(PdqHash.from_hex(hex_hash, int(quality)), int(frame), time)


def features_to_lines(features: Iterable[VpdqFeature]) -> str:
    """Meta's ``vpdq-hash-video`` output file."""
    return "".join(f"{f.line()}\n" for f in features)


def _good(features: Iterable[VpdqFeature]) -> list[bytes]:
    """Distinct hashes of good quality (ThreatExchange's dedupe and quality filter)."""
    seen: dict[bytes, None] = {}
    for feature in features:
        if feature.quality >= QUALITY_THRESHOLD:
            seen.setdefault(feature.hash.bits)
    return list(seen)


def match_percent(query: Iterable[VpdqFeature], compared: Iterable[VpdqFeature]) -> float:
    """The share (percent) of the query's good frames within DISTANCE_THRESHOLD of one of the
    compared video's good frames; 0.0 for a query with none."""
    ours, theirs = _good(query), _good(compared)
    if not ours or not theirs:
        return 0.0
    matched = sum(any(hamming_distance(a, b) <= DISTANCE_THRESHOLD for b in theirs) for a in ours)
    return 100.0 * matched / len(ours)


def is_match(query: Iterable[VpdqFeature], compared: Iterable[VpdqFeature]) -> bool:
    """Meta's decision: at least QUERY_MATCH_PERCENT of the query's frames are found."""
    return match_percent(query, compared) >= QUERY_MATCH_PERCENT
