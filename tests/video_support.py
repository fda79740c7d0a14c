"""Small videos built with PyAV from generated frames, in a test's temporary folder."""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np


def textured(seed: int, width: int = 320, height: int = 240) -> np.ndarray:
    """A picture with corners at every scale: blurred noise, blocks and lines, in colour."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8)
    image = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    for _ in range(25):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.rectangle(image, (x, y), (x + int(rng.integers(8, 50)), y + 20), colour, -1)
        cv2.line(image, (x, y), (int(rng.integers(0, width)), y), colour, 2)
    return image


def write_video(
    path: Path,
    frames: Iterable[np.ndarray],
    *,
    fps: float = 10,
    codec: str = "libx264",
    options: dict[str, str] | None = None,
) -> Path:
    """Encode RGB frames (all one size) into ``path``; the container follows the suffix."""
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w") as container:
        stream = None
        for rgb in frames:
            if stream is None:
                stream = container.add_stream(codec, rate=rate)
                stream.width, stream.height = rgb.shape[1], rgb.shape[0]
                stream.pix_fmt = "yuv420p" if codec != "gif" else "rgb8"
                stream.options = options or ({"preset": "ultrafast"} if codec == "libx264" else {})
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        assert stream is not None, "no frames"
        for packet in stream.encode():
            container.mux(packet)
    return path


def held(pictures: Iterable[np.ndarray], seconds: float, fps: float = 10) -> list[np.ndarray]:
    """Each picture held for ``seconds``, with a little noise so frames are not identical."""
    rng = np.random.default_rng(0)
    frames = []
    for picture in pictures:
        for _ in range(round(seconds * fps)):
            noise = rng.integers(-3, 4, picture.shape, dtype=np.int16)
            frames.append(np.clip(picture.astype(np.int16) + noise, 0, 255).astype(np.uint8))
    return frames
