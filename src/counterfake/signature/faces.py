"""Where the face is in a registered photo: a box, never an identity.

A nudify derivative regenerates the body and keeps the face: the face is what makes it hers.
Another photo taken at the same spot (a street-style photographer's favourite wall, a tripod)
shares the whole background and differs only in the person, which looks exactly like a
regenerated body unless we know where the face was. So a signature keeps the box of one face,
and a match whose alignment says "the face was replaced" is no match.

A box in the wrong place is worse than no box: a "face" found on a patterned shirt makes every
real derivative of that photo look like a face swap. Haar cascades, which ship with OpenCV (no
model to download, no recognition of who it is), fire on such textures, so a box is kept only
where three of OpenCV's frontal cascades, trained separately, agree. On the 250 labelled photos
in ../shared/data/people (checked against their hair and skin labels) the largest box of the
default cascade lay off the head in 15 photos; the agreement of three, in 1, at the cost of
finding no face in 45 rather than 39. A photo with no face found simply carries no box, and
matching falls back to its other checks.
"""

from __future__ import annotations

from functools import cache

import cv2
import numpy as np

_CASCADES = (
    "haarcascade_frontalface_alt2.xml",  # the box kept; the other two must confirm it
    "haarcascade_frontalface_default.xml",
    "haarcascade_frontalface_alt.xml",
)
_SAME_FACE_IOU = 0.3


@cache
def _cascade(name: str) -> cv2.CascadeClassifier:
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + name)
    if cascade.empty():
        raise RuntimeError(f"OpenCV's {name} is missing from this installation")
    return cascade


def confirmed_face(grey: np.ndarray) -> np.ndarray:
    """The most confident face that all three cascades find, as int32 [x, y, width, height].

    Empty when they do not agree on any face. The confirming cascades look only around the
    first one's boxes, which keeps registration fast.
    """
    primary, *confirming = (_cascade(name) for name in _CASCADES)
    side = max(17, grey.shape[1] // 2)
    options = {"scaleFactor": 1.1, "minNeighbors": 3, "minSize": (16, 16), "maxSize": (side, side)}
    boxes, _, weights = primary.detectMultiScale3(grey, outputRejectLevels=True, **options)
    agreed = [
        (box, weight)
        for box, weight in zip(np.reshape(boxes, (-1, 4)), np.ravel(weights), strict=True)
        if all(_found_again(cascade, grey, box, options) for cascade in confirming)
    ]
    if not agreed:
        return np.zeros(0, np.int32)
    return np.asarray(max(agreed, key=lambda pair: pair[1])[0], np.int32)


def _found_again(
    cascade: cv2.CascadeClassifier, grey: np.ndarray, box: np.ndarray, options: dict
) -> bool:
    """Whether ``cascade`` finds a face overlapping ``box`` in the area around it."""
    x, y, width, height = (int(v) for v in box)
    x0, y0 = max(0, x - width), max(0, y - height)
    x1, y1 = min(grey.shape[1], x + 2 * width), min(grey.shape[0], y + 2 * height)
    found = cascade.detectMultiScale(grey[y0:y1, x0:x1], **options)
    return any(_iou(box, (fx + x0, fy + y0, fw, fh)) > _SAME_FACE_IOU for fx, fy, fw, fh in found)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    width = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    height = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    overlap = width * height
    return float(overlap / (a[2] * a[3] + b[2] * b[3] - overlap))
