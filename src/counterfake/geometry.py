"""Points carried by the maps verification fits (2x3 affine or 3x3 homography)."""

from __future__ import annotations

import numpy as np


def project(transform: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Points (n, 2) carried by a 2x3 affine or a 3x3 homography."""
    moved = xy @ transform[:2, :2].T + transform[:2, 2]
    if transform.shape[0] == 2:
        return moved
    return moved / (xy @ transform[2, :2] + transform[2, 2])[:, None]
