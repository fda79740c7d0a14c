"""The stored signature on real photos: within its budget in the registry, one orientation
held, and a mirrored copy still found with the scanned image's mirror image."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import SHARED_DATA, blur_region, jpeg, save
from PIL import Image

from counterfake.db import connect
from counterfake.registry import Registry
from counterfake.scan import Scanner, hash_files
from counterfake.signature import record

pytestmark = pytest.mark.skipif(
    not (SHARED_DATA / "people").is_dir(), reason="the real photos live in ../shared/data"
)
PHOTOS = [SHARED_DATA / "people" / f"{n:04d}.jpg" for n in range(100, 124)]


@pytest.fixture(scope="module")
def registry_file(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("stored") / "registry.db")
    with Registry(path) as registry:
        registry.register("alice", [r.signature for r in hash_files(map(str, PHOTOS))])
    return path


def test_a_stored_signature_keeps_its_features_in_one_orientation_within_the_budget(registry_file):
    with connect(registry_file) as db:
        sizes = [n for (n,) in db.execute("SELECT length(signature) FROM photos")]
    assert len(sizes) == len(PHOTOS)
    assert max(sizes) <= record.RECORD_BUDGET
    with Registry(registry_file) as registry:
        for _, signature in registry.signatures():
            assert len(signature.mirrored) == 0  # one orientation held
            assert len(signature.features) == 512  # every feature: the budget cuts none


def test_a_mirrored_derivative_is_found_with_one_orientation_stored(registry_file, tmp_path):
    source = PHOTOS[23]
    garment = np.asarray(Image.open(str(source).replace(".jpg", "_mask.png"))) > 127
    photo = cv2.imread(str(source))[:, :, ::-1]
    flipped = blur_region(photo, garment, sigma=12)[:, ::-1]
    small = cv2.resize(flipped, None, fx=0.7, fy=0.7, interpolation=cv2.INTER_AREA)
    path = save(tmp_path / "flipped.jpg", jpeg(small, 80))
    [result] = Scanner(registry_file).scan([str(path)], masks_dir=tmp_path / "masks")
    [match] = result.matches
    assert match.photo.endswith(source.name) and match.kind == "manipulated"
    mask = np.asarray(Image.open(match.mask)) > 0
    truth = cv2.resize(garment[:, ::-1].astype(np.uint8), mask.shape[::-1]) > 0
    assert (mask & truth).sum() / (mask | truth).sum() > 0.4
