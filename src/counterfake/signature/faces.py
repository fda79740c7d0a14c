"""Where the face is in a registered photo: a box, never an identity.

A nudify derivative regenerates the body and keeps the face: the face is what makes it hers.
Another photo taken at the same spot (a street-style photographer's favourite wall, a tripod)
shares the whole background and differs only in the person, which looks exactly like a
regenerated body unless we know where the face was. So a signature keeps the box of one face,
and a match whose alignment says "the face was replaced" is no match.

A box in the wrong place is worse than no box: a "face" found on a patterned shirt makes every
real derivative of that photo look like a face swap. The box is the most confident face of
libfacedetection's YuNet detector (the ``yuface`` package: its small CNN's weights are compiled
into the package, nothing is downloaded, and it recognises nobody), kept only at
MIN_CONFIDENCE or more. It replaced the agreement of three OpenCV Haar cascades, which cost
most of a registration and found fewer faces, no more reliably (bench/faces.py compares the two
on the labelled photos; docs/speed.md has the figures). A photo with no face found simply
carries no box, and matching falls back to its other checks.
"""

from __future__ import annotations

import ctypes
from functools import cache
from pathlib import Path

import numpy as np
import yuface

MIN_CONFIDENCE = 70  # of yuface's 0..100


@cache
def _openmp() -> ctypes.CDLL | None:
    """The OpenMP runtime bundled with yuface's wheel, if it has one."""
    libraries = Path(yuface.__file__).resolve().parent.parent / "yuface.libs"
    found = sorted(libraries.glob("libgomp*")) if libraries.is_dir() else []
    return ctypes.CDLL(str(found[0])) if found else None


def _one_thread() -> None:
    """Run the detector on the calling thread alone.

    Its OpenMP team otherwise takes every core, and on a busy machine spins: 113 ms of CPU time
    a photo instead of 25 (one-off measurement on this project's 2-core machine). The setting
    is per thread, so it is made before every detection; it costs a microsecond.
    """
    openmp = _openmp()
    if openmp is not None:
        openmp.omp_set_num_threads(1)


def face_box(rgb: np.ndarray) -> np.ndarray:
    """The most confident face in an RGB frame, as int32 [x, y, width, height] within it.

    Empty when no face reaches MIN_CONFIDENCE.
    """
    _one_thread()
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    confidence, boxes, _ = yuface.detect(bgr, conf=MIN_CONFIDENCE / 100)
    confidence, boxes = np.ravel(confidence), np.reshape(boxes, (-1, 4)).astype(np.int64)
    if len(confidence) == 0:
        return np.zeros(0, np.int32)
    x, y, width, height = boxes[int(np.argmax(confidence))]
    height_limit, width_limit = rgb.shape[:2]
    x0, y0 = min(max(x, 0), width_limit - 1), min(max(y, 0), height_limit - 1)
    x1, y1 = min(x + width, width_limit), min(y + height, height_limit)
    return np.array([x0, y0, max(1, x1 - x0), max(1, y1 - y0)], np.int32)
