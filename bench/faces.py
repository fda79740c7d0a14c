"""Face boxes on the labelled people photos: counterfake's detector next to the earlier one.

    python -m bench.faces --data ../shared/data --name yunet

For each photo of ``people/`` (reduced to the 512-pixel frame a signature is made in), the box
is judged by the human label under its centre: on the head (skin, hair, glasses), none found,
or off the head (a box that would make every real derivative look like a face swap). The
baseline is the earlier detector: the most confident face that three OpenCV Haar cascades
agree on (kept here only as the baseline). CPU time is per photo on one core.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from bench.results import save
from counterfake.imaging import load_image
from counterfake.signature.extract import REFERENCE_SIDE, grey, resize_longer_side
from counterfake.signature.faces import face_box

HEAD_LABELS = (17, 19, 41, 47)  # glasses, hair, skin, sunglasses
_CASCADES = (
    "haarcascade_frontalface_alt2.xml",
    "haarcascade_frontalface_default.xml",
    "haarcascade_frontalface_alt.xml",
)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    width = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    height = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    overlap = width * height
    return float(overlap / (a[2] * a[3] + b[2] * b[3] - overlap))


def haar_agreement(rgb: np.ndarray) -> np.ndarray:
    """The earlier box: the first cascade's most confident face that the other two confirm."""
    image = grey(rgb)
    primary, *confirming = (
        cv2.CascadeClassifier(cv2.data.haarcascades + name) for name in _CASCADES
    )
    side = max(17, image.shape[1] // 2)
    options = {"scaleFactor": 1.1, "minNeighbors": 3, "minSize": (16, 16), "maxSize": (side, side)}
    boxes, _, weights = primary.detectMultiScale3(image, outputRejectLevels=True, **options)

    def found_again(cascade: cv2.CascadeClassifier, box: np.ndarray) -> bool:
        x, y, width, height = (int(v) for v in box)
        x0, y0 = max(0, x - width), max(0, y - height)
        x1, y1 = min(image.shape[1], x + 2 * width), min(image.shape[0], y + 2 * height)
        found = cascade.detectMultiScale(image[y0:y1, x0:x1], **options)
        return any(_iou(box, (fx + x0, fy + y0, fw, fh)) > 0.3 for fx, fy, fw, fh in found)

    agreed = [
        (box, weight)
        for box, weight in zip(np.reshape(boxes, (-1, 4)), np.ravel(weights), strict=True)
        if all(found_again(cascade, box) for cascade in confirming)
    ]
    if not agreed:
        return np.zeros(0, np.int32)
    return np.asarray(max(agreed, key=lambda pair: pair[1])[0], np.int32)


def judge(detector: Callable[[np.ndarray], np.ndarray], photos: list[tuple]) -> dict:
    counts = {"on_head": 0, "none": 0, "off_head": 0}
    cpu = 0.0
    for frame, labels in photos:
        started = time.process_time()
        box = detector(frame)
        cpu += time.process_time() - started
        if len(box) == 0:
            counts["none"] += 1
            continue
        x, y, width, height = (int(v) for v in box)
        centre = labels[
            min(y + height // 2, len(labels) - 1), min(x + width // 2, labels.shape[1] - 1)
        ]
        counts["on_head" if centre in HEAD_LABELS else "off_head"] += 1
    return {**counts, "cpu_ms_per_photo": cpu / len(photos) * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--name", help="save the run as bench/results/faces-NAME.json")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    photos = []
    for path in sorted((args.data / "people").glob("[0-9][0-9][0-9][0-9].jpg")):
        frame, _ = resize_longer_side(load_image(path), REFERENCE_SIDE)
        labels = np.asarray(Image.open(args.data / "people_labels" / f"{path.stem}.png"))
        labels = cv2.resize(labels, frame.shape[1::-1], interpolation=cv2.INTER_NEAREST)
        photos.append((frame, labels))
    out = {
        "photos": len(photos),
        "counterfake": judge(face_box, photos),
        "haar_agreement": judge(haar_agreement, photos),
    }
    print(json.dumps(out, indent=1))
    if args.name:
        save(f"faces-{args.name}", out)


if __name__ == "__main__":
    main()
