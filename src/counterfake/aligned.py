"""The scanned image as the registered photo's grid sees it, once an alignment is found.

Verification (matching.py) finds where the photo lies in the scanned image; comparing the two
(cells.py) needs the scanned image's cells laid over the photo's own: its pixels warped into
the photo's grid frame, or, for a scanned image known by its signature alone, its grid warped
into the photo's grid.
"""

from __future__ import annotations

import cv2
import numpy as np

from counterfake.geometry import warp
from counterfake.signature.extract import Signature
from counterfake.signature.grid import (
    GRID_COLS,
    GRID_ROWS,
    cell_statistics,
    dequantise,
    grid_work_size,
)


def scanned_cells(
    work: np.ndarray, signature: Signature, transform: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(the cell statistics of ``work`` warped into ``signature``'s grid, the cells it covers)
    under ``transform`` (scanned working frame -> photo frame)."""
    width, height = grid_work_size(signature.frame_width, signature.frame_height)
    to_grid = np.diag([width / signature.frame_width, height / signature.frame_height, 1.0])
    to_cells = to_grid @ transform
    source = work
    shrink = float(np.sqrt(abs(np.linalg.det(to_cells[:2, :2]))))
    if shrink < 0.9:  # reduce first: warping straight down would alias the texture statistic
        size = (max(1, round(source.shape[1] * shrink)), max(1, round(source.shape[0] * shrink)))
        source = cv2.resize(source, size, interpolation=cv2.INTER_AREA)
        enlarge = np.diag([work.shape[1] / source.shape[1], work.shape[0] / source.shape[0], 1.0])
        to_cells = to_cells @ enlarge  # reduced pixels -> working pixels -> grid frame
    warped = warp(source, to_cells, (width, height), flags=cv2.INTER_LINEAR)
    ones = np.ones(source.shape[:2], np.float32)
    valid = warp(ones, to_cells, (width, height), flags=cv2.INTER_LINEAR)
    scanned = cell_statistics(warped, valid)
    return scanned[:, :, :4], scanned[:, :, 4] > 0.95


def grid_in_frame(
    scanned: Signature, signature: Signature, transform: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(``scanned``'s grid warped into ``signature``'s cells, the cells it covers) under
    ``transform`` (scanned frame -> photo frame, as ``verify`` finds it)."""

    def pixels_to_cells(width: int, height: int) -> np.ndarray:
        return np.array([[GRID_COLS / width, 0, -0.5], [0, GRID_ROWS / height, -0.5], [0, 0, 1]])

    grid_to_grid = (
        pixels_to_cells(signature.frame_width, signature.frame_height)
        @ transform
        @ np.linalg.inv(pixels_to_cells(scanned.frame_width, scanned.frame_height))
    )
    size = (GRID_COLS, GRID_ROWS)
    warped = warp(dequantise(scanned.grid), grid_to_grid, size, flags=cv2.INTER_LINEAR)
    ones = np.ones((GRID_ROWS, GRID_COLS), np.float32)
    valid = warp(ones, grid_to_grid, size, flags=cv2.INTER_LINEAR)
    return warped, valid > 0.95
