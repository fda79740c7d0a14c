"""bench/sources.py: one picture stored twice in the data is kept once."""

import random

import numpy as np
from PIL import Image

from bench.sources import central_region, distinct, same_picture
from counterfake.signature.pdq import pdq_hash


def test_a_picture_stored_twice_is_kept_once(tmp_path):
    rng = np.random.default_rng(3)
    first = (rng.uniform(0, 255, (64, 48, 3))).astype(np.uint8)
    first = np.asarray(Image.fromarray(first).resize((192, 256)))
    other = np.ascontiguousarray(first[::-1, ::-1])
    paths = []
    for name, pixels in (("0001", first), ("0002", other), ("0003", first)):
        Image.fromarray(pixels).save(tmp_path / f"{name}.jpg", quality=95)
        paths.append(tmp_path / f"{name}.jpg")
    kept, dropped = distinct(paths)
    assert [p.name for p in kept] == ["0001.jpg", "0002.jpg"]
    assert dropped == ["0003.jpg"]


def test_the_scenes_edit_region_covers_a_fifth_to_a_third_of_the_photo():
    for seed in range(20):
        share = central_region((243, 325, 3), random.Random(seed)).mean()
        assert 0.15 < share < 0.40


def test_a_resized_copy_is_the_same_picture_and_another_crop_is_not():
    rng = np.random.default_rng(5)
    photo = np.asarray(
        Image.fromarray(rng.uniform(0, 255, (30, 40, 3)).astype(np.uint8)).resize((400, 300))
    )
    smaller = np.asarray(Image.fromarray(photo).resize((325, 244)))
    cropped = np.ascontiguousarray(photo[20:, 30:])
    bits = pdq_hash(photo).bits
    assert same_picture(bits, photo, pdq_hash(smaller).bits, smaller)
    assert not same_picture(bits, photo, pdq_hash(cropped).bits, cropped)
