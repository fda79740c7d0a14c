"""Safe video decoding: a video file becomes a stream of timed frames, or one clear VideoError.

The video counterpart of imaging.py, and like it the lowest layer: it knows nothing of matching.
Videos come from strangers, so nothing in them is trusted:

- the duration, frame size and frame count a file declares are checked against
  :class:`VideoLimits` before any frame is decoded (bombs), and checked again on what really
  decodes (a stream may declare nothing, or lie);
- a truncated or corrupt stream is an error naming the file and the time where it broke, never
  a silent half video;
- every exception PyAV, FFmpeg, Pillow or the OS raises becomes one ``VideoError`` on one line.

Containers PyAV (FFmpeg) reads are decoded with it: mp4, mov, mkv, webm, avi, 3gp and the rest.
Animations (GIF, animated WebP and PNG) are decoded with Pillow, which reads all three (the
FFmpeg in PyAV's wheels cannot decode animated WebP), frame by frame with their own durations.

Frames are decoded one at a time and nothing is kept: memory stays flat however long the video.
Only a frame that is asked for is converted to RGB (:meth:`Frame.rgb`); every frame offers a
small grey thumbnail (:meth:`Frame.thumbnail`) from its luma plane, enough to see a scene change.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import av
import av.error
import cv2
import numpy as np
from PIL import Image, ImageSequence, UnidentifiedImageError

from counterfake.imaging import DEFAULT_MAX_PIXELS, ImageError

VIDEO_SUFFIXES: frozenset[str] = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".3gp", ".3g2", ".mpg", ".mpeg", ".ts"}
    | {".wmv", ".flv", ".ogv", ".mts", ".m2ts"}
)
"""Lower-case suffixes that make a file in a folder count as a video (animated GIF and WebP are
image suffixes: whether such a file is an animation is decided by its content)."""

ANIMATION_FORMATS = frozenset({"GIF", "WEBP", "PNG"})
THUMBNAIL_SIZE = (64, 36)  # (width, height) of the grey thumbnail a scene change is seen on
_MAX_PROBLEM = 200


@dataclass(frozen=True)
class VideoLimits:
    """What a video may declare, and decode to, before it is refused.

    The defaults admit any ordinary upload (four hours of 8K at 120 frames a second would not
    pass the frame count; four hours of 4K at 60 would) and refuse what only a bomb needs.
    """

    max_duration: float = 4 * 3600.0  # seconds
    max_pixels: int = DEFAULT_MAX_PIXELS  # per frame
    max_frames: int = 1_000_000


@dataclass(frozen=True)
class VideoInfo:
    """What a video declares about itself, checked against the limits."""

    duration: float | None  # seconds; None when the container does not say
    width: int
    height: int
    fps: float  # average frame rate; 0.0 when unknown
    frames: int | None  # declared frame count; None when the container does not say
    codec: str


class VideoError(ImageError):
    """Any reason a video file gives no frames; ``str`` is ``f"{path}: {problem}"`` on one line.

    A subclass of ImageError, so everything that reports a bad image reports a bad video alike.
    """


@dataclass
class Frame:
    """One decoded frame: its time in seconds, its position in decoding order, and its pixels
    on demand (converted only when asked for)."""

    time: float
    index: int
    width: int
    height: int
    _rgb: Callable[[int, int], np.ndarray]
    _thumbnail: Callable[[], np.ndarray]

    def rgb(self) -> np.ndarray:
        """The frame as HxWx3 uint8 RGB."""
        return self._rgb(self.width, self.height)

    def rgb_scaled(self, width: int, height: int) -> np.ndarray:
        """The frame as RGB at another size (swscale's area filter, as vPDQ converts)."""
        return self._rgb(width, height)

    def thumbnail(self) -> np.ndarray:
        """The frame's luminance reduced to THUMBNAIL_SIZE, float32 0..255."""
        return self._thumbnail()


def is_video_path(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def is_animation(path: str | os.PathLike) -> bool:
    """Whether a file is an animated GIF, WebP or PNG (more than one frame); False for
    anything else, including files that cannot be read (they fail where they are decoded)."""
    try:
        with Image.open(path) as image:
            return image.format in ANIMATION_FORMATS and getattr(image, "n_frames", 1) > 1
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return False


class Video:
    """An open video: :attr:`info` is known and checked; :meth:`frames` decodes it.

    Use as a context manager. Opening never decodes a frame.
    """

    def __init__(self, path: str | os.PathLike, limits: VideoLimits | None = None) -> None:
        self.path = os.fspath(path)
        self.limits = limits or VideoLimits()
        self._container: av.container.InputContainer | None = None
        self._animation: Image.Image | None = None
        if is_animation(self.path):
            self._open_animation()
        else:
            self._open_container()
        try:
            _check_info(self.path, self.info, self.limits)
        except VideoError:
            self.close()
            raise

    @property
    def is_animation(self) -> bool:
        """Decoded by Pillow (GIF, WebP, PNG animation) rather than from a video stream."""
        return self._animation is not None

    @property
    def stream_rate(self) -> float:
        """The video stream's average frame rate, or its base rate where that is unknown
        (what vPDQ numbers its frames by); 0.0 for an animation or when neither is known."""
        if self._container is None:
            return 0.0
        stream = self._container.streams.video[0]
        rate = stream.average_rate or stream.base_rate
        return float(rate) if rate else 0.0

    def __enter__(self) -> Video:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None
        if self._animation is not None:
            self._animation.close()
            self._animation = None

    # ---- opening ---------------------------------------------------------------------------

    def _open_container(self) -> None:
        try:
            container = av.open(self.path, metadata_errors="ignore")
        except FileNotFoundError:
            raise VideoError(self.path, "no such file") from None
        except IsADirectoryError:
            raise VideoError(self.path, "is a folder, not a video") from None
        except (av.error.FFmpegError, OSError, UnicodeDecodeError, ValueError) as error:
            raise VideoError(self.path, f"not a readable video ({problem_text(error)})") from None
        self._container = container
        if not container.streams.video:
            container.close()
            raise VideoError(self.path, "holds no video stream")
        stream = container.streams.video[0]
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        rate = stream.average_rate or stream.guessed_rate
        self.info = VideoInfo(
            duration=duration if duration is not None and duration > 0 else None,
            width=int(stream.codec_context.width or 0),
            height=int(stream.codec_context.height or 0),
            fps=float(rate) if rate else 0.0,
            frames=int(stream.frames) if stream.frames else None,
            codec=stream.codec_context.name,
        )

    def _open_animation(self) -> None:
        try:
            image = Image.open(self.path)
            if image.width * image.height > self.limits.max_pixels:  # before any frame loads
                image.close()
                raise VideoError(
                    self.path,
                    f"frames of {image.width}x{image.height} are over the limit of "
                    f"{self.limits.max_pixels} pixels",
                )
            durations = []
            for frame in ImageSequence.Iterator(image):
                frame.load()  # WebP sets a frame's duration when it is loaded, not sought
                durations.append(max(float(frame.info.get("duration") or 100), 10.0) / 1000)
                if len(durations) > self.limits.max_frames:
                    break
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as e:
            raise VideoError(self.path, f"not a readable animation ({problem_text(e)})") from None
        self._animation = image
        self._durations = durations
        total = sum(durations)
        self.info = VideoInfo(
            duration=total,
            width=image.width,
            height=image.height,
            fps=len(durations) / total if total else 0.0,
            frames=len(durations),
            codec=(image.format or "animation").lower(),
        )

    # ---- decoding --------------------------------------------------------------------------

    def frames(self, *, skip_unreferenced: bool = False) -> Iterator[Frame]:
        """Every frame in presentation order, each checked against the limits.

        ``skip_unreferenced`` lets the decoder drop frames no other frame refers to (most
        B-frames): a scan that samples a frame a second loses nothing by it and decodes faster.
        Raises VideoError naming the time where a stream breaks or ends early.
        """
        if self._animation is not None:
            yield from self._animation_frames()
        else:
            yield from self._container_frames(skip_unreferenced)

    def _container_frames(self, skip_unreferenced: bool) -> Iterator[Frame]:
        assert self._container is not None
        stream = self._container.streams.video[0]
        stream.thread_type = "NONE"  # one core per video; a scan runs videos side by side
        if skip_unreferenced:
            stream.codec_context.skip_frame = "NONREF"
        time, index = 0.0, -1
        try:
            for frame in self._container.decode(stream):
                index += 1
                if frame.time is not None:
                    time = float(frame.time)
                elif self.info.fps:
                    time = index / self.info.fps
                self._check_frame(frame.width, frame.height, time, index)
                yield _container_frame(frame, time, index)
        except VideoError:
            raise
        except (av.error.FFmpegError, OSError, ValueError, MemoryError) as error:
            problem = problem_text(error)
            raise VideoError(
                self.path, f"stream breaks at {time:.2f} s (frame {index + 1}): {problem}"
            ) from None
        if index < 0:
            raise VideoError(self.path, "holds no decodable frame")
        declared = self.info.duration
        step = 1 / self.info.fps if self.info.fps else 0.0
        if declared is not None and time + step < declared - max(1.0, 4 * step):
            raise VideoError(
                self.path, f"stream ends at {time:.2f} s of a declared {declared:.2f} s (truncated)"
            )

    def _animation_frames(self) -> Iterator[Frame]:
        assert self._animation is not None
        time, index = 0.0, 0
        try:
            for index, duration in enumerate(self._durations):
                self._animation.seek(index)
                rgb = np.asarray(self._animation.convert("RGB"))
                self._check_frame(rgb.shape[1], rgb.shape[0], time, index)
                yield Frame(
                    time,
                    index,
                    rgb.shape[1],
                    rgb.shape[0],
                    partial(_resized, rgb),
                    partial(_gray_thumbnail, rgb),
                )
                time += duration
        except (OSError, ValueError, EOFError) as error:
            where = f"{time:.2f} s (frame {index + 1})"
            problem = problem_text(error)
            raise VideoError(self.path, f"animation breaks at {where}: {problem}") from None

    def _check_frame(self, width: int, height: int, time: float, index: int) -> None:
        limits = self.limits
        if width * height > limits.max_pixels:
            raise VideoError(
                self.path,
                f"frame at {time:.2f} s is {width}x{height}, over the limit of "
                f"{limits.max_pixels} pixels",
            )
        if time > limits.max_duration:
            raise VideoError(
                self.path, f"runs past {time:.0f} s, over the limit of {limits.max_duration:.0f} s"
            )
        if index >= limits.max_frames:
            raise VideoError(self.path, f"more than {limits.max_frames} frames")


def _check_info(path: str, info: VideoInfo, limits: VideoLimits) -> None:
    """Refuse a video by what it declares, before a frame is decoded."""
    if info.width < 1 or info.height < 1:
        raise VideoError(path, "declares no frame size")
    if info.width * info.height > limits.max_pixels:
        raise VideoError(
            path,
            f"frames of {info.width}x{info.height} are over the limit of "
            f"{limits.max_pixels} pixels",
        )
    if info.duration is not None and info.duration > limits.max_duration:
        raise VideoError(
            path,
            f"lasts {info.duration:.0f} s, over the limit of {limits.max_duration:.0f} s",
        )
    frames = info.frames
    if frames is None and info.duration is not None and info.fps:
        frames = math.ceil(info.duration * info.fps)
    if frames is not None and frames > limits.max_frames:
        raise VideoError(path, f"declares {frames} frames, over the limit of {limits.max_frames}")


def _resized(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    if (width, height) == (rgb.shape[1], rgb.shape[0]):
        return rgb
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)


def _container_frame(frame: av.VideoFrame, time: float, index: int) -> Frame:
    def rgb(width: int, height: int) -> np.ndarray:
        return frame.to_ndarray(format="rgb24", width=width, height=height, interpolation="AREA")

    def thumbnail() -> np.ndarray:
        if frame.format.name in _LUMA_FIRST:
            plane = frame.planes[0]
            luma = np.frombuffer(memoryview(plane), np.uint8).reshape(frame.height, plane.line_size)
            return _thumbnail(luma[:, : frame.width])
        return _thumbnail(frame.to_ndarray(format="gray"))

    return Frame(time, index, frame.width, frame.height, rgb, thumbnail)


# Pixel formats whose first plane is 8-bit luma: a thumbnail reads it without a conversion.
_LUMA_FIRST = frozenset(
    {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "nv21", "gray"}
)


def _gray_thumbnail(rgb: np.ndarray) -> np.ndarray:
    return _thumbnail(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))


def _thumbnail(luma: np.ndarray) -> np.ndarray:
    """A grey image reduced to THUMBNAIL_SIZE: rows and columns picked at a stride first (a
    720p frame is 900 thousand pixels; the thumbnail needs a few thousand of them)."""
    height, width = luma.shape
    step = max(1, min(height // (4 * THUMBNAIL_SIZE[1]), width // (4 * THUMBNAIL_SIZE[0])))
    small = np.ascontiguousarray(luma[::step, ::step])
    return cv2.resize(small, THUMBNAIL_SIZE, interpolation=cv2.INTER_AREA).astype(np.float32)


def problem_text(error: BaseException) -> str:
    """A decoder's error as one short line."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text[:_MAX_PROBLEM]
