"""Shared fixtures: the drawn example images shipped in examples/, and edits of them."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
SHARED_DATA = Path(os.environ.get("COUNTERFAKE_SHARED_DATA", REPO.parent / "shared" / "data"))


def read_rgb(path: Path) -> np.ndarray:
    return cv2.imread(str(path))[:, :, ::-1].copy()


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(data, cv2.IMREAD_COLOR)[:, :, ::-1].copy()


def save(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), rgb[:, :, ::-1])
    return path


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    """The registered example photo (a drawing: a figure in a striped garment, 480x640)."""
    return read_rgb(EXAMPLES / "registered" / "photo.jpg")


@pytest.fixture(scope="session")
def unrelated() -> np.ndarray:
    return read_rgb(EXAMPLES / "downloaded" / "unrelated.jpg")


@pytest.fixture(scope="session")
def garment() -> np.ndarray:
    """The garment region of the example photo (bool), as drawn by examples/make_examples.py."""
    mask = np.zeros((640, 480), np.uint8)
    cv2.ellipse(mask, (200, 380), (85, 150), 0, 0, 360, 255, -1)
    return mask > 0


def blur_region(rgb: np.ndarray, region: np.ndarray, sigma: float = 20) -> np.ndarray:
    """The harmless stand-in for regeneration: the region replaced by a heavy blur of itself."""
    edited = rgb.copy()
    edited[region] = cv2.GaussianBlur(rgb, (0, 0), sigma)[region]
    return edited
