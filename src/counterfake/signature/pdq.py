"""PDQ, Meta's 256-bit perceptual hash, stated step by step (after Meta's published algorithm).

PDQ answers "is this the same picture?" and is what hash-sharing programmes (StopNCII, Meta's
ThreatExchange and Hasher-Matcher-Actioner) exchange. counterfake keeps it in every signature so
its registry can sit beside those programmes; matching derivatives is the local features' job.

The steps:

1. Reduce the image so its longer side is at most 512 pixels (as Meta's tools do on load), and
   convert it to luminance with the Rec. 601 weights.
2. Blur it with a Jarosz filter (two passes of a box filter along each axis: a tent) whose
   window is about half the distance between output samples, then sample 64x64 points.
3. Take the 16x16 lowest non-constant frequencies of its two-dimensional DCT-II.
4. Each bit says whether its coefficient is above the median of the 256.
5. Quality (0..100) is the sum of absolute differences between neighbouring samples of the
   64x64 image, scaled: flat images give little and their hashes are unreliable.

The eight dihedral hashes (rotations and flips) come from the same 64x64 samples, transformed.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

HASH_BITS = 256
MATCH_THRESHOLD = 31  # Meta's recommended Hamming distance for a match
_SAMPLES = 64
_FREQUENCIES = 16
_MAX_SIDE = 512
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


@dataclass(frozen=True)
class PdqHash:
    bits: bytes  # 32 bytes; byte k holds bits 8k..8k+7, least significant first
    quality: int  # 0..100

    def hex(self) -> str:
        """Meta's text form: sixteen 16-bit words, the highest word first, four hex digits each."""
        words = np.frombuffer(self.bits, "<u2")
        return "".join(f"{int(w):04x}" for w in words[::-1])

    @classmethod
    def from_hex(cls, text: str, quality: int = 100) -> PdqHash:
        text = text.strip().lower()
        if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
            raise ValueError(f"a PDQ hash is 64 hexadecimal digits, not {text[:80]!r}")
        if not 0 <= quality <= 100:
            raise ValueError(f"PDQ quality must be 0..100, not {quality}")
        words = [int(text[i : i + 4], 16) for i in range(0, 64, 4)][::-1]
        return cls(np.array(words, "<u2").tobytes(), quality)


def hamming_distance(a: bytes, b: bytes) -> int:
    return int(np.unpackbits(np.frombuffer(a, np.uint8) ^ np.frombuffer(b, np.uint8)).sum())


def _dct_matrix() -> np.ndarray:
    """Rows 1..16 of the 64-point DCT-II basis (row 0, the mean, carries no layout)."""
    k = np.arange(1, _FREQUENCIES + 1)[:, None]
    n = np.arange(_SAMPLES)[None, :]
    return (np.sqrt(2.0 / _SAMPLES) * np.cos(np.pi / (2 * _SAMPLES) * k * (2 * n + 1))).astype(
        np.float64
    )


_DCT = _dct_matrix()


def _box_blur(values: np.ndarray, window: int, axis: int) -> np.ndarray:
    """Mean over a centred window along one axis; near the edges, over the part that exists."""
    before = (window - 1) // 2
    after = window - 1 - before
    cumulative = np.concatenate(
        [np.zeros_like(np.take(values, [0], axis=axis)), np.cumsum(values, axis=axis)], axis=axis
    )
    length = values.shape[axis]
    index = np.arange(length)
    low = np.clip(index - before, 0, length)
    high = np.clip(index + after + 1, 0, length)
    sums = np.take(cumulative, high, axis=axis) - np.take(cumulative, low, axis=axis)
    shape = [1] * values.ndim
    shape[axis] = length
    return sums / (high - low).reshape(shape)


def _window(old: int, new: int) -> int:
    """Meta's Jarosz window: half the spacing between output samples, rounded up."""
    return (old + 2 * new - 1) // (2 * new)


def luminance_samples(rgb: np.ndarray) -> np.ndarray:
    """Steps 1 and 2: the 64x64 blurred luminance samples of an RGB image."""
    height, width = rgb.shape[:2]
    if max(height, width) > _MAX_SIDE:
        scale = _MAX_SIDE / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        height, width = rgb.shape[:2]
    luma = rgb.astype(np.float64) @ _LUMA.astype(np.float64)
    for axis, length in ((0, height), (1, width)):
        window = _window(length, _SAMPLES)
        for _ in range(2):
            luma = _box_blur(luma, window, axis)
    rows = ((np.arange(_SAMPLES) + 0.5) * height / _SAMPLES).astype(int)
    cols = ((np.arange(_SAMPLES) + 0.5) * width / _SAMPLES).astype(int)
    return luma[np.ix_(rows, cols)]


def _quality(samples: np.ndarray) -> int:
    """Step 5: the gradient sum of the 64x64 samples, scaled to 0..100."""
    vertical = np.trunc(np.abs(np.diff(samples, axis=0)) * 100 / 255).sum()
    horizontal = np.trunc(np.abs(np.diff(samples, axis=1)) * 100 / 255).sum()
    return int(min(100, (vertical + horizontal) // 90))


def _hash_samples(samples: np.ndarray, quality: int) -> PdqHash:
    """Steps 3 and 4: the DCT block, thresholded at its median."""
    coefficients = _DCT @ samples @ _DCT.T
    bits = (coefficients > np.median(coefficients)).ravel()
    return PdqHash(np.packbits(bits, bitorder="little").tobytes(), quality)


def pdq_hash(rgb: np.ndarray) -> PdqHash:
    """The PDQ hash of an RGB image (HxWx3 uint8)."""
    samples = luminance_samples(rgb)
    return _hash_samples(samples, _quality(samples))


_DIHEDRAL = {
    "original": lambda s: s,
    "rotate90": lambda s: np.rot90(s, 1),
    "rotate180": lambda s: np.rot90(s, 2),
    "rotate270": lambda s: np.rot90(s, 3),
    "flipX": lambda s: s[::-1, :],
    "flipY": lambda s: s[:, ::-1],
    "flipPlus1": lambda s: s.T,
    "flipMinus1": lambda s: np.rot90(s, 2).T,
}


def pdq_dihedral_hashes(rgb: np.ndarray) -> dict[str, PdqHash]:
    """The hashes of the image's eight rotations and flips, named as Meta names them."""
    samples = luminance_samples(rgb)
    quality = _quality(samples)
    return {
        name: _hash_samples(np.ascontiguousarray(f(samples)), quality)
        for name, f in _DIHEDRAL.items()
    }
