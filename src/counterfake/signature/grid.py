"""The coarse tile grid: per-cell statistics used only to say *where* a match was altered.

Once a scanned image is aligned to a registered photo, comparing the two cell by cell shows which
part was replaced. The registry never holds pixels, so it keeps, for each of GRID_ROWS x GRID_COLS
cells, four numbers: the mean lightness and the two mean colour-opponent values (CIE Lab), and the
local contrast (standard deviation of lightness). Together they catch the harmless stand-ins for
regeneration used in tests (inpainting, pasted texture, blur, colour shift) and real regeneration,
which changes colour, texture or both. This is also exactly what a signature reveals about a photo:
a blurry 48x48 layout of its colours.

The statistics are computed on the photo reduced to GRID_WORK_SIDE pixels, so that a scanned copy
at half size gives the same numbers as the original.
"""

from __future__ import annotations

import cv2
import numpy as np

GRID_ROWS = 48
GRID_COLS = 48
GRID_CHANNELS = 4  # L mean, a mean, b mean, L standard deviation
GRID_WORK_SIDE = 256


def grid_work_size(width: int, height: int) -> tuple[int, int]:
    """The (width, height) at which cell statistics are computed for an image of this size."""
    scale = min(1.0, GRID_WORK_SIDE / max(height, width))
    return max(GRID_COLS, round(width * scale)), max(GRID_ROWS, round(height * scale))


def cell_statistics(rgb: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Return the (GRID_ROWS, GRID_COLS, 4) float32 statistics of an RGB image.

    ``valid`` (same size, 0..1) marks the pixels that exist; it is used for a scanned image warped
    into a registered photo's frame, where cropped-away parts are empty. Cell means are then taken
    over valid pixels only, and the cell coverage is returned as a fifth channel.
    """
    size = grid_work_size(rgb.shape[1], rgb.shape[0])
    small = rgb if rgb.shape[1::-1] == size else cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB).astype(np.float32)
    lightness = lab[:, :, 0]
    planes = [lab[:, :, 0], lab[:, :, 1], lab[:, :, 2], lightness * lightness]
    if valid is None:
        weight = np.ones(lab.shape[:2], np.float32)
    else:
        weight = valid.astype(np.float32)
        if weight.shape[1::-1] != size:
            weight = cv2.resize(weight, size, interpolation=cv2.INTER_AREA)
    cells = (GRID_COLS, GRID_ROWS)
    coverage = cv2.resize(weight, cells, interpolation=cv2.INTER_AREA)
    denominator = np.maximum(coverage, 1e-6)
    means = [
        cv2.resize(p * weight, cells, interpolation=cv2.INTER_AREA) / denominator for p in planes
    ]
    std = np.sqrt(np.maximum(means[3] - means[0] ** 2, 0.0))
    stats = np.stack([means[0], means[1], means[2], std], axis=-1)
    if valid is None:
        return stats.astype(np.float32)
    return np.concatenate([stats, coverage[:, :, None]], axis=-1).astype(np.float32)


def quantise(stats: np.ndarray) -> np.ndarray:
    """Store the four statistics as bytes (Lab is already 0..255; contrast is clipped at 127.5)."""
    scaled = stats.copy()
    scaled[:, :, 3] *= 2.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def dequantise(grid: np.ndarray) -> np.ndarray:
    stats = grid.astype(np.float32)
    stats[:, :, 3] /= 2.0
    return stats
