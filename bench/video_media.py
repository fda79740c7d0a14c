"""Videos built by code for bench/video.py: clips from photos, the transforms a repost goes
through, and their encoding with PyAV. Nothing here is random without a seed.

A clip is a frame count, a rate and a function from frame number to RGB pixels, so a transform
is a new function over the old one and no clip is ever held in memory whole (a 10 s 720p clip
would take 700 MB).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

WIDTH, HEIGHT = 1280, 720
FPS = 25
TRANSITION = 0.4  # seconds of cross-fade between two photos of a slideshow


@dataclass(frozen=True)
class Clip:
    frames: int
    fps: float
    frame: Callable[[int], np.ndarray]
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def duration(self) -> float:
        return self.frames / self.fps


def fit(rgb: np.ndarray, width: int, height: int, fill: int = 0) -> np.ndarray:
    """The picture scaled to fit inside width x height, centred on a plain background."""
    scale = min(width / rgb.shape[1], height / rgb.shape[0])
    size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    canvas = np.full((height, width, 3), fill, np.uint8)
    y, x = (height - size[1]) // 2, (width - size[0]) // 2
    canvas[y : y + size[1], x : x + size[0]] = small
    return canvas


def slideshow(pictures: list[np.ndarray], seconds: float, seed: int) -> Clip:
    """Each picture shown for ``seconds`` with a slow pan and zoom (direction by ``seed``), and
    a cross-fade into the next one."""
    rng = np.random.default_rng(seed)
    canvases = [fit(p, WIDTH, HEIGHT) for p in pictures]
    moves = [
        (rng.uniform(-0.04, 0.04), rng.uniform(-0.04, 0.04), rng.uniform(0.05, 0.12))
        for _ in pictures
    ]
    per = round(seconds * FPS)
    fade = round(TRANSITION * FPS)

    def shot(index: int, k: int) -> np.ndarray:
        dx, dy, zoom = moves[index]
        t = k / per
        matrix = cv2.getRotationMatrix2D((WIDTH / 2, HEIGHT / 2), 0, 1 + zoom * t)
        matrix[:, 2] += (dx * WIDTH * t, dy * HEIGHT * t)
        return cv2.warpAffine(canvases[index], matrix, (WIDTH, HEIGHT))

    def frame(n: int) -> np.ndarray:
        index, k = divmod(n, per)
        current = shot(index, k)
        if k >= per - fade and index + 1 < len(canvases):
            alpha = (k - (per - fade) + 1) / (fade + 1)
            return cv2.addWeighted(current, 1 - alpha, shot(index + 1, 0), alpha, 0)
        return current

    return Clip(per * len(canvases), FPS, frame)


def screen_recording(picture: np.ndarray, seconds: float, seed: int) -> Clip:
    """A phone screen recorded while scrolling a chat: the photo at 40-60% of the frame,
    interface bars, text lines, and the photo moving up as the feed scrolls."""
    rng = np.random.default_rng(seed)
    share = rng.uniform(0.4, 0.6)
    inner = fit(picture, round(WIDTH * share), round(HEIGHT * share * 1.3), fill=240)
    count = round(seconds * FPS)
    speed = rng.uniform(20, 60)  # pixels a second of scrolling

    def frame(n: int) -> np.ndarray:
        canvas = np.full((HEIGHT, WIDTH, 3), 235, np.uint8)
        top = round(HEIGHT * 0.35 - speed * n / FPS)
        for line in range(12):  # chat bubbles above and below
            y = top - 200 + 70 * line
            if 70 < y < HEIGHT - 60:
                cv2.rectangle(canvas, (120, y), (700 - 40 * (line % 4), y + 40), (255,) * 3, -1)
                cv2.putText(
                    canvas,
                    "message text " * 2,
                    (130, y + 28),
                    cv2.FONT_HERSHEY_SIMPLEX,
                    0.6,
                    (40,) * 3,
                    1,
                )
        y0, x0 = max(0, top), (WIDTH - inner.shape[1]) // 2
        visible = inner[max(0, -top) : HEIGHT - y0]
        canvas[y0 : y0 + len(visible), x0 : x0 + inner.shape[1]] = visible[: HEIGHT - y0]
        cv2.rectangle(canvas, (0, 0), (WIDTH, 60), (30, 110, 200), -1)  # the app's header
        cv2.putText(canvas, "Channel", (30, 42), cv2.FONT_HERSHEY_SIMPLEX, 1.1, (255,) * 3, 2)
        cv2.rectangle(canvas, (0, HEIGHT - 50), (WIDTH, HEIGHT), (250,) * 3, -1)
        return canvas

    return Clip(count, FPS, frame)


def concat(*clips: Clip) -> Clip:
    starts = np.cumsum([0, *(c.frames for c in clips)])

    def frame(n: int) -> np.ndarray:
        index = int(np.searchsorted(starts, n, side="right") - 1)
        return clips[index].frame(n - int(starts[index]))

    return Clip(int(starts[-1]), clips[0].fps, frame)


def held_in(clip_before: Clip, picture: np.ndarray, seconds: float, clip_after: Clip) -> Clip:
    """A photo held still for ``seconds`` between two clips (a slideshow of other photos)."""
    canvas = fit(picture, WIDTH, HEIGHT)
    held = Clip(round(seconds * FPS), FPS, lambda n: canvas)
    return concat(clip_before, held, clip_after)


# ---- transforms ------------------------------------------------------------------------------


def mapped(clip: Clip, change: Callable[[np.ndarray], np.ndarray], width: int, height: int) -> Clip:
    return Clip(clip.frames, clip.fps, lambda n: change(clip.frame(n)), width, height)


def rescaled(clip: Clip, width: int, height: int) -> Clip:
    def change(rgb: np.ndarray) -> np.ndarray:
        return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)

    return mapped(clip, change, width, height)


def cropped(clip: Clip, share: float) -> Clip:
    """``share`` of each side cut away (a zoomed-in repost)."""
    dx, dy = round(clip.width * share), round(clip.height * share)
    return mapped(
        clip,
        lambda rgb: np.ascontiguousarray(rgb[dy:-dy, dx:-dx]),
        clip.width - 2 * dx,
        clip.height - 2 * dy,
    )


def letterboxed_vertical(clip: Clip) -> Clip:
    """A landscape clip reposted as a vertical phone video: scaled into a 720x1280 frame with
    black bars above and below (as short-video apps do)."""
    return mapped(clip, lambda rgb: fit(rgb, 720, 1280), 720, 1280)


def captioned(clip: Clip, text: str) -> Clip:
    """A caption burnt in on a band across the lower quarter."""

    def change(rgb: np.ndarray) -> np.ndarray:
        out = rgb.copy()
        h, w = out.shape[:2]
        cv2.rectangle(out, (0, int(h * 0.78)), (w, int(h * 0.92)), (0, 0, 0), -1)
        cv2.putText(
            out,
            text,
            (int(w * 0.05), int(h * 0.88)),
            cv2.FONT_HERSHEY_DUPLEX,
            h / 400,
            (255, 255, 255),
            2,
        )
        return out

    return mapped(clip, change, clip.width, clip.height)


def logo(clip: Clip) -> Clip:
    """A semi-transparent channel logo in the upper right corner."""

    def change(rgb: np.ndarray) -> np.ndarray:
        out = rgb.copy()
        h, w = out.shape[:2]
        box = out[int(h * 0.04) : int(h * 0.2), int(w * 0.75) : int(w * 0.96)]
        mark = np.zeros_like(box)
        cv2.circle(
            mark, (box.shape[1] // 5, box.shape[0] // 2), box.shape[0] // 3, (255, 200, 0), -1
        )
        cv2.putText(
            mark,
            "CHANNEL",
            (box.shape[1] // 3, box.shape[0] * 2 // 3),
            cv2.FONT_HERSHEY_SIMPLEX,
            h / 900,
            (255, 255, 255),
            2,
        )
        box[:] = cv2.addWeighted(box, 0.45, mark, 0.55, 0)
        return out

    return mapped(clip, change, clip.width, clip.height)


def mirrored(clip: Clip) -> Clip:
    return mapped(clip, lambda rgb: np.ascontiguousarray(rgb[:, ::-1]), clip.width, clip.height)


def sped(clip: Clip, speed: float) -> Clip:
    """Played ``speed`` times as fast (frames dropped or repeated, as an editor exports it)."""
    count = int(clip.frames / speed)
    return Clip(
        count,
        clip.fps,
        lambda n: clip.frame(min(clip.frames - 1, int(n * speed))),
        clip.width,
        clip.height,
    )


def trimmed(clip: Clip, start: float, end: float) -> Clip:
    first, last = round(start * clip.fps), round(end * clip.fps)
    return Clip(last - first, clip.fps, lambda n: clip.frame(first + n), clip.width, clip.height)


# ---- encoding --------------------------------------------------------------------------------


def encode(clip: Clip, path: Path, *, crf: int = 23, codec: str = "libx264") -> Path:
    """Write the clip; x264 with B-frames (preset veryfast) as uploads usually are, or VP9.
    Written to a temporary name first, so an interrupted run leaves no half file."""
    partial = path.with_name(path.name + ".partial" + path.suffix)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(partial), "w") as container:
        stream = container.add_stream(codec, rate=Fraction(clip.fps).limit_denominator(1001))
        stream.width, stream.height = clip.width - clip.width % 2, clip.height - clip.height % 2
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "veryfast", "crf": str(crf)}
        else:
            stream.options = {"crf": str(crf), "b": "0", "deadline": "realtime", "cpu-used": "8"}
        for n in range(clip.frames):
            rgb = clip.frame(n)[: stream.height, : stream.width]
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    partial.replace(path)
    return path
