"""Masks: a match's altered cells drawn in the scanned image's pixels (uint8, 255 = altered),
and written as a PNG."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from counterfake.geometry import warp

DIGEST_CHARACTERS = 12  # of a SHA-256, in a mask's file name: enough to keep names apart


def write_mask(
    masks_dir: str | os.PathLike, image_path: str, names: list[str], mask: np.ndarray
) -> str:
    """Write ``mask`` into ``masks_dir`` as ``<image's stem>.<names joined by dots>.png``;
    return its path. OSError when it cannot be written."""
    path = str(Path(masks_dir) / ".".join([Path(image_path).stem, *names, "png"]))
    if not cv2.imwrite(path, mask):
        raise OSError(f"{path}: could not write the mask")
    return path


def mask_png(mask: np.ndarray) -> bytes:
    """A mask as PNG bytes."""
    ok, data = cv2.imencode(".png", mask)
    if not ok:
        raise ValueError("the mask could not be encoded as PNG")
    return data.tobytes()


def draw_cells(
    cells: np.ndarray,
    frame: tuple[int, int],
    transform: np.ndarray,
    scale: float,
    shape: tuple[int, int],
) -> np.ndarray:
    """Grid cells of a photo (bool, GRID_ROWS x GRID_COLS) drawn in a scanned image's pixels
    (uint8, 255 = marked): ``frame`` is the photo frame's (width, height), ``transform`` maps
    the scanned working frame onto it, ``scale`` is working pixels per scanned pixel, ``shape``
    the scanned image's (height, width).

    The cell map is carried by one map, cell grid -> photo frame -> scanned working frame
    -> scanned image, and interpolated on the way, so its boundary is smooth rather than blocky.
    The maps are warped as bytes (255 = marked, cut at half): the scanned image can have
    millions of pixels, and warping float maps of that size cost a manipulated match's decision
    about three times as much (bench/speed.py --profile).
    """
    width, height = frame
    rows, columns = cells.shape
    cells_to_photo = np.array(
        [
            [width / columns, 0, width / columns / 2 - 0.5],
            [0, height / rows, height / rows / 2 - 0.5],
            [0, 0, 1],
        ]
    )
    work_to_image = np.diag([1 / scale, 1 / scale, 1.0])
    cells_to_image = work_to_image @ np.linalg.inv(transform) @ cells_to_photo
    size = (shape[1], shape[0])
    soft = warp(
        cells.astype(np.uint8) * np.uint8(255),
        cells_to_image,
        size,
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    inside = warp(
        np.full(cells.shape, 255, np.uint8),
        cells_to_image,
        size,
        flags=cv2.INTER_NEAREST,
        borderMode=cv2.BORDER_CONSTANT,
    )
    _, marked = cv2.threshold(soft, 127, 255, cv2.THRESH_BINARY)
    return cv2.bitwise_and(marked, inside)
