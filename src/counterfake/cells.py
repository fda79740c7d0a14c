"""Comparing an aligned scanned image with a registered photo's grid, cell by cell.

Global changes (recompression, colour grading, a semi-transparent watermark, a greyscale copy)
are fitted away first; what still differs clearly, in colour or in texture, and forms a solid
region, is altered.
"""

from __future__ import annotations

import cv2
import numpy as np

from counterfake.thresholds import Thresholds

_FIT_TOLERANCE = (4.0, 3.0, 3.0, 3.0)  # L, a, b, contrast: cells this close "agree" for the fit
_MONOCHROME_SPREAD = 2.0  # Lab chroma units: a copy whose cells vary less has lost its colour


def compare_cells(
    photo: np.ndarray, scanned: np.ndarray, visible: np.ndarray, t: Thresholds
) -> tuple[np.ndarray, np.ndarray]:
    """(altered, agreeing) cells after the global fit.

    Altered cells differ in colour or texture beyond both the absolute thresholds and the noise
    of this particular copy (a heavily recompressed copy is noisier everywhere). Agreeing cells
    are within the absolute thresholds. Both are needed: when an alignment is a coincidence,
    every cell differs, the "noise" is huge, and nothing would stand out as altered.
    """
    colour, texture = cell_differences(photo, scanned, visible)
    altered = visible & (
        (colour > max(t.colour_difference, t.noise_multiple * _noise(colour[visible])))
        | (texture > max(t.texture_difference, t.noise_multiple * _noise(texture[visible])))
    )
    agreeing = visible & (colour <= t.colour_difference) & (texture <= t.texture_difference)
    return _keep_regions(altered, t.min_region_cells) & visible, agreeing


def cell_differences(
    photo: np.ndarray, scanned: np.ndarray, visible: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(colour, texture) difference of each cell once global changes are fitted away.

    Colour is the CIE Lab distance, texture the |log| ratio of the local contrasts, both after
    a robust per-channel gain and offset (recompression, colour grading, a semi-transparent
    watermark over the whole image change every cell alike). A copy with no colour left is
    compared with the photo as a greyscale conversion would leave it.
    """
    if _monochrome(scanned, visible) and not _monochrome(photo, visible):
        photo = _as_grey(photo)
    fitted = np.empty_like(scanned)
    for channel, tolerance in enumerate(_FIT_TOLERANCE):
        fitted[:, :, channel] = _robust_linear_fit(
            scanned[:, :, channel], photo[:, :, channel], visible, tolerance
        )
    colour = np.linalg.norm(fitted[:, :, :3] - photo[:, :, :3], axis=-1)
    contrast = np.maximum(fitted[:, :, 3], 0.0)  # a fitted gain can push a flat cell below zero
    texture = np.abs(np.log((contrast + 3.0) / (photo[:, :, 3] + 3.0)))
    return colour, texture


def _monochrome(cells: np.ndarray, visible: np.ndarray) -> bool:
    """Whether the visible cells carry no colour beyond one flat tint (a greyscale copy)."""
    if not visible.any():
        return False
    chroma = cells[:, :, 1:3][visible]
    spread = np.hypot(*(chroma - np.median(chroma, axis=0)).T)
    return float(np.percentile(spread, 95)) <= _MONOCHROME_SPREAD


def _as_grey(cells: np.ndarray) -> np.ndarray:
    """The photo's cells as a greyscale conversion would leave them.

    A greyscale copy keeps luma (0.299 R + 0.587 G + 0.114 B, what image libraries and phone
    filters compute), not CIE lightness: a saturated blue garment turns darker than its
    lightness says. Comparing lightness alone would call such cells altered; so the photo's
    cell colours go through the same conversion, and its chroma becomes neutral like the copy's.
    The contrast channel is kept: within a cell, luma and lightness vary nearly together.
    """
    lab = cells[:, :, :3].astype(np.float32) - np.float32([0, 128, 128])
    lab[:, :, 0] *= 100 / 255
    rgb = np.clip(cv2.cvtColor(lab, cv2.COLOR_Lab2RGB), 0, 1)
    luma = rgb @ np.float32([0.299, 0.587, 0.114])
    grey_lab = cv2.cvtColor(np.repeat(luma[:, :, None], 3, axis=2), cv2.COLOR_RGB2Lab)
    grey = cells.copy()
    grey[:, :, 0] = grey_lab[:, :, 0] * 255 / 100
    grey[:, :, 1:3] = 128
    return grey


def _robust_linear_fit(
    source: np.ndarray, target: np.ndarray, visible: np.ndarray, tolerance: float
) -> np.ndarray:
    """Map ``source`` onto ``target`` with a gain and offset fitted on the cells that agree.

    Up to half the cells may be altered, and they would pull an ordinary least-squares fit
    towards themselves. So the fit starts from whichever of "no change" (the usual repost) and
    "a uniform shift" (a global filter) already agrees within ``tolerance`` on more cells, and
    each round refits on the cells that agree with the previous fit.
    """
    if not visible.any():
        return source

    def agreeing(model: tuple[float, float]) -> int:
        return int((np.abs(model[0] * source + model[1] - target)[visible] <= tolerance).sum())

    starts = [(1.0, 0.0), (1.0, float(np.median(target[visible] - source[visible])))]
    gain, offset = max(starts, key=agreeing)
    for _ in range(3):
        residual = np.abs(gain * source + offset - target)
        use = visible & (residual <= max(tolerance, 2.5 * _noise(residual[visible])))
        x, y = source[use].astype(np.float64), target[use].astype(np.float64)
        centred = x - x.mean()
        spread = float(centred @ centred)
        if len(x) < 8 or spread < 1e-6 * len(x):
            break
        # the least-squares slope in closed form: np.polyfit's general solver cost several
        # times as much, four channels of every verified alignment
        gain = float(np.clip(centred @ (y - y.mean()) / spread, 0.5, 2.0))
        offset = float(np.mean(y - gain * x))
    return gain * source + offset


def _noise(values: np.ndarray) -> float:
    """A noise scale robust to half the cells being altered: the 20th percentile of |x|.

    For a normal distribution that percentile is 0.253 sigma.
    """
    if len(values) == 0:
        return 0.0
    return float(np.percentile(np.abs(values), 20) / 0.253)


def _keep_regions(cells: np.ndarray, min_cells: int) -> np.ndarray:
    """Drop thin and small components (text and watermark strokes), keep solid regions."""
    kernel = np.ones((3, 3), np.uint8)
    opened = cv2.morphologyEx(cells.astype(np.uint8), cv2.MORPH_OPEN, kernel)
    closed = cv2.morphologyEx(opened, cv2.MORPH_CLOSE, kernel)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(closed, connectivity=4)
    keep = np.zeros(count, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_cells
    return keep[labels]
