"""The face box of a registered photo: on the head, or none at all."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from conftest import SHARED_DATA
from PIL import Image

from counterfake.imaging import load_image
from counterfake.signature.extract import reference_face
from counterfake.signature.faces import face_box

HEAD_LABELS = (17, 19, 41, 47)  # glasses, hair, skin, sunglasses in the label maps


def test_a_picture_without_a_face_has_no_box():
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 256, (300, 400, 3), np.uint8)
    assert face_box(noise).shape == (0,)
    assert face_box(np.full((64, 64, 3), 128, np.uint8)).shape == (0,)


@pytest.mark.skipif(not (SHARED_DATA / "people").is_dir(), reason="needs ../shared/data")
@pytest.mark.parametrize("name", ["0001", "0123", "0200"])
def test_the_box_lies_on_the_head_within_the_frame(name):
    photo = load_image(SHARED_DATA / "people" / f"{name}.jpg")
    box = reference_face(photo)
    assert box.dtype == np.int32 and box.shape == (4,)
    scale = 512 / max(photo.shape[:2])
    labels = np.asarray(Image.open(SHARED_DATA / "people_labels" / f"{name}.png"))
    x, y, width, height = (int(v) for v in box)
    assert x >= 0 and y >= 0 and width > 0 and height > 0
    assert x + width <= round(photo.shape[1] * scale) and y + height <= 512
    centre = labels[int((y + height / 2) / scale), int((x + width / 2) / scale)]
    assert centre in HEAD_LABELS


@pytest.mark.skipif(not (SHARED_DATA / "people").is_dir(), reason="needs ../shared/data")
def test_threads_find_the_same_box():
    photo = load_image(SHARED_DATA / "people" / "0123.jpg")
    expected = reference_face(photo)
    found: list[np.ndarray] = []
    threads = [
        threading.Thread(target=lambda: found.append(reference_face(photo))) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(np.array_equal(box, expected) for box in found)
