"""Where the face is in a registered photo: a box, never an identity.

A nudify derivative regenerates the body and keeps the face: the face is what makes it hers.
Another photo taken at the same spot (a street-style photographer's favourite wall, a tripod)
shares the whole background and differs only in the person, which looks exactly like a
regenerated body unless we know where the face was. So a signature keeps the box of the
largest face found, and a match whose alignment says "the face was replaced" is no match.

Detection uses the Haar cascades that ship with OpenCV (frontal, then profile both ways): no
model to download, no recognition of who it is. A photo with no face found simply carries no
box, and matching falls back to its other checks.
"""

from __future__ import annotations

from functools import cache

import cv2
import numpy as np


@cache
def _cascade(name: str) -> cv2.CascadeClassifier:
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + name)
    if cascade.empty():
        raise RuntimeError(f"OpenCV's {name} is missing from this installation")
    return cascade


def largest_face(grey: np.ndarray) -> np.ndarray:
    """The largest face as int32 [x, y, width, height] in ``grey``'s pixels; empty if none."""
    width = grey.shape[1]
    options = {"scaleFactor": 1.2, "minNeighbors": 4, "minSize": (20, 20)}
    options["maxSize"] = (max(21, width // 2), max(21, width // 2))
    found = _cascade("haarcascade_frontalface_default.xml").detectMultiScale(grey, **options)
    if len(found) == 0:
        profile = _cascade("haarcascade_profileface.xml")
        found = list(profile.detectMultiScale(grey, **options))
        for x, y, w, h in profile.detectMultiScale(np.ascontiguousarray(grey[:, ::-1]), **options):
            found.append((width - x - w, y, w, h))
    if len(found) == 0:
        return np.zeros(0, np.int32)
    return np.array(max(found, key=lambda box: box[2] * box[3]), np.int32)
