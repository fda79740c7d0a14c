"""Mask files: the altered region of a match (uint8, 255 = altered) as a PNG."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

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
