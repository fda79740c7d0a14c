"""Real photos for the cluster tests: a registry of people photos, and harmless edits of them
(a blurred garment, a recompression, a crop) beside unregistered photos."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from conftest import SHARED_DATA, blur_region, jpeg

from counterfake.imaging import load_image
from counterfake.registry import Registry
from counterfake.signature.extract import make_signature

PEOPLE = SHARED_DATA / "people"


def people_photo(number: int) -> np.ndarray:
    return load_image(PEOPLE / f"{number:04d}.jpg")


def register_people(db: str, numbers: range, subject: str = "alice") -> None:
    """Register people photos ``numbers`` under ``subject``."""
    signatures = [
        make_signature(people_photo(n), f"people/{n:04d}.jpg", f"{n:064x}") for n in numbers
    ]
    with Registry(db) as registry:
        registry.register(subject, signatures)


def edited(number: int, how: str) -> np.ndarray:
    """A harmless derivative of people photo ``number``: its garment blurred, recompressed
    hard, or its central part cropped."""
    rgb = people_photo(number)
    if how == "blurred":
        garment = cv2.imread(str(PEOPLE / f"{number:04d}_mask.png"), cv2.IMREAD_GRAYSCALE) > 0
        return blur_region(rgb, garment)
    if how == "recompressed":
        return jpeg(rgb, 35)
    height, width = rgb.shape[:2]
    return np.ascontiguousarray(rgb[height // 8 : -height // 8, width // 8 : -width // 8])


def unregistered(number: int) -> np.ndarray:
    return load_image(SHARED_DATA / "distractors" / f"{number:04d}.jpg")


def save_jpeg(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    return path
