"""Small embedded pictures for the HTML report, with the altered region outlined in red.

The report must open anywhere without a network and without the scanned folder beside it, so
every picture is reduced (at most ``MAX_SIDE`` pixels a side) and embedded as a JPEG data URI.
The outline is drawn into the pixels: it then survives printing, e-mail and screenshots.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass

import cv2
import numpy as np

from counterfake.imaging import DEFAULT_MAX_PIXELS, ImageError, load_image
from counterfake.results import Finding
from counterfake.video.decode import Video, VideoLimits

MAX_SIDE = 320
STRIP_SIDE = 160  # a video's strip of matched frames
_QUALITY = 82
_RED = (0, 0, 255)  # BGR, as OpenCV draws and encodes
_WHITE = (255, 255, 255)


@dataclass(frozen=True)
class Thumbnail:
    uri: str  # data:image/jpeg;base64,...
    width: int
    height: int
    outlined: bool  # an altered region was drawn on it


def make_thumbnail(
    path: str | os.PathLike,
    *,
    mask: str | os.PathLike | None = None,
    max_side: int = MAX_SIDE,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Thumbnail | None:
    """The reduced picture of ``path`` with ``mask``'s region outlined; None if it is unreadable.

    A file can vanish or change between the scan and the report; the report then says so
    instead of failing.
    """
    try:
        rgb = load_image(path, max_pixels=max_pixels)
    except ImageError:
        return None
    return _encoded(rgb, mask, max_side)


def _encoded(rgb: np.ndarray, mask: str | os.PathLike | None, max_side: int) -> Thumbnail | None:
    height, width = rgb.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    bgr = cv2.resize(rgb[:, :, ::-1], size, interpolation=cv2.INTER_AREA)
    outlined = mask is not None and _outline(bgr, mask)
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, _QUALITY])
    if not ok:
        return None
    uri = "data:image/jpeg;base64," + base64.b64encode(data.tobytes()).decode("ascii")
    return Thumbnail(uri, size[0], size[1], outlined)


@dataclass(frozen=True)
class StripFrame:
    """One frame of a video's strip: its time and picture."""

    time: float
    image: Thumbnail


STRIP_SEGMENTS = 3  # segments of a video match whose frames the strip shows


def strip_times(match: Finding) -> list[float]:
    """The times a video match's strip shows: where it was seen best, and the start, middle and
    end of each of its first STRIP_SEGMENTS segments (none for a photo's match)."""
    if match.frame_time is None or match.segments is None:
        return []
    times = [match.frame_time]
    for part in match.segments[:STRIP_SEGMENTS]:
        start, end = part.scan
        times += [start, (start + end) / 2, max(start, end - 0.05)]
    return times


def make_video_strip(
    path: str | os.PathLike,
    times: list[float],
    *,
    mask: str | os.PathLike | None = None,
    mask_time: float | None = None,
    max_side: int = STRIP_SIDE,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> list[StripFrame]:
    """The frames of a video nearest to ``times`` (in time order), the one at ``mask_time`` with
    ``mask``'s region outlined; the video is decoded once, up to the last time asked for. An
    unreadable video gives the frames found before the problem (none if it cannot be opened).
    """
    wanted = sorted(set(times))
    strip: list[StripFrame] = []
    try:
        with Video(path, VideoLimits(max_pixels=max_pixels)) as video:
            previous = None
            for frame in video.frames(skip_unreferenced=True):
                while wanted and frame.time >= wanted[0]:
                    chosen = frame
                    if previous is not None and wanted[0] - previous.time < frame.time - wanted[0]:
                        chosen = previous
                    wanted.pop(0)
                    outline = (
                        mask
                        if mask_time is not None and abs(chosen.time - mask_time) < 0.05
                        else None
                    )
                    image = _encoded(chosen.rgb(), outline, max_side)
                    if image is not None and not (strip and strip[-1].time == chosen.time):
                        strip.append(StripFrame(chosen.time, image))
                if not wanted:
                    break
                previous = frame
    except ImageError:  # VideoError is one
        pass
    return strip


def _outline(bgr: np.ndarray, mask_path: str | os.PathLike) -> bool:
    """Draw the outer contours of the mask (255 = altered) on ``bgr``; False if none."""
    mask = cv2.imread(os.fspath(mask_path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        return False
    height, width = bgr.shape[:2]
    small = cv2.resize(mask, (width, height), interpolation=cv2.INTER_AREA) > 127
    contours, _ = cv2.findContours(
        small.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
    )
    if not contours:
        return False
    cv2.drawContours(bgr, contours, -1, _WHITE, 4, cv2.LINE_AA)  # a halo: visible on red too
    cv2.drawContours(bgr, contours, -1, _RED, 2, cv2.LINE_AA)
    return True
