"""Where a scanned image is a grid of pictures, the boxes of its cells.

A collage of four photos gives each a quarter of the scanned image's features, and a quarter of
its pixels at the working size: a photo in one cell, with a third of it regenerated, can leave
too few features for verification. Looked at cell by cell, each photo gets the whole feature
budget. The second look costs four more feature extractions, so it is taken only where the image
is laid out as a grid: a straight line runs right across its middle, made of a border, the
padding around a cell, or the step between two cells.
"""

from __future__ import annotations

from itertools import pairwise

import cv2
import numpy as np

ANALYSIS_SIDE = 256  # the layout is read at about this size
MIDDLE = (0.3, 0.7)  # a grid's dividing line lies within this share of the side
LINE_SHARE = 0.9  # share of a row's length that must be border, padding or step
FLAT = 3.0  # grey levels within which padding or a border is flat
STEP = 20.0  # grey levels by which one cell's edge differs from the next one's
DARK = 24.0  # below this grey level, flat is the dark of a night shot, not a border


def grid_cells(image: np.ndarray) -> list[tuple[int, int, int, int]]:
    """(x0, y0, x1, y1) boxes of the four cells of a 2x2 grid, in the image's pixels; [] when
    the image is not one.

    Both dividing lines are needed: one alone is as often a horizon or a plain background as a
    side-by-side collage, and a side-by-side collage gives each photo half the features, which
    the first look has always found enough of (docs/benchmarks.md).
    """
    height, width = image.shape[:2]
    # a whole number of pixels to one: OpenCV averages such blocks ten times faster than
    # blocks of a fractional size, and this runs on every image where nothing was found
    factor = max(1, round(max(height, width) / ANALYSIS_SIDE))
    scale = 1 / factor
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    grey = grey.astype(np.float32)
    row, column = _dividing_line(grey), _dividing_line(grey.T)
    if row is None or column is None:
        return []
    ys = (0, round(row / scale), height)
    xs = (0, round(column / scale), width)
    return [(x0, y0, x1, y1) for y0, y1 in pairwise(ys) for x0, x1 in pairwise(xs)]


def _dividing_line(grey: np.ndarray) -> int | None:
    """The row in the middle band that runs across as a border, padding or a step, if any.

    A step is looked for across two rows as well as one: resizing and compression smear the
    edge between two cells over a pixel or two.
    """
    height = grey.shape[0]
    first, last = max(2, int(height * MIDDLE[0])), min(height - 3, int(height * MIDDLE[1]))
    if last <= first:
        return None

    def rows(offset: int) -> np.ndarray:
        return grey[first + offset : last + 1 + offset]

    here = rows(0)
    step = (np.abs(rows(1) - rows(-1)) > STEP) | (np.abs(rows(2) - rows(-1)) > STEP)
    step |= np.abs(rows(1) - rows(-2)) > STEP
    along = np.abs(np.diff(here, axis=1, append=here[:, -1:]))
    flat = (np.abs(here - rows(-1)) < FLAT) & (np.abs(here - rows(1)) < FLAT) & (along < FLAT)
    flat &= here >= DARK
    share = (step | flat).mean(axis=1)
    best = int(np.argmax(share))
    return first + best if share[best] >= LINE_SHARE else None
