"""The held-out benchmark: its edits and transforms are none of the main benchmark's, and its
manifest is what bench/accuracy.py scores (built on a few sources of ../shared/data)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import SHARED_DATA

from bench import cases, unseen

SOURCES, DISTRACTORS = 2, 3
SAME_GEOMETRY = ("tone", "grey", "stickers")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, dict]:
    if not (SHARED_DATA / "people").is_dir():
        pytest.skip(f"the benchmark photos live in {SHARED_DATA}, absent from this checkout")
    out = tmp_path_factory.mktemp("unseen")
    return out, unseen.build(SHARED_DATA, out, workers=1, sources=SOURCES, distractors=DISTRACTORS)


def test_held_out_edits_and_transforms_are_not_the_main_benchmarks():
    assert not set(unseen.EDITS) & set(cases.EDITS)
    assert not set(unseen.TRANSFORMS) & set(cases.TRANSFORMS)


def test_every_source_gives_a_repost_per_transform_and_twelve_edits(built):
    _, manifest = built
    assert len(manifest["sources"]) == SOURCES
    assert sum(s["registered"] for s in manifest["sources"]) == SOURCES // 2
    assert len(manifest["distractors"]) == DISTRACTORS
    for source in manifest["sources"]:
        own = [c for c in manifest["cases"] if c["source"] == source["id"]]
        reposts = [c for c in own if c["expected_kind"] == "repost"]
        assert sorted(c["transform"] for c in reposts) == sorted(unseen.TRANSFORMS)
        edits = {(c["edit"], c["target_fraction"]) for c in own if c["edit"]}
        assert edits == {(e, s) for e in unseen.EDITS for s in unseen.SIZES}
        assert all(c["registered"] == source["registered"] for c in own)


def test_masks_are_the_size_of_their_images_and_cover_the_edited_share(built):
    out, manifest = built
    for case in manifest["cases"]:
        image = cv2.imread(str(out / case["path"]))
        assert image is not None, case["path"]
        if case["mask"] is None:
            continue
        mask = cv2.imread(str(out / case["mask"]), cv2.IMREAD_GRAYSCALE)
        assert mask.shape == image.shape[:2], case["id"]
        if case["transform"] in SAME_GEOMETRY:
            assert abs((mask > 127).mean() - case["target_fraction"]) < 0.03, case["id"]


def test_pixels_outside_the_mask_are_the_photos_own(built):
    """Where the truth says nothing was altered, a same-geometry edit left the photo's pixels
    (up to the transform's tone change and JPEG noise): the mask is where the edit is."""
    out, manifest = built
    checked = 0
    for case in manifest["cases"]:
        if case["edit"] is None or case["transform"] != "stickers":
            continue
        checked += 1
        image = cv2.imread(str(out / case["path"])).astype(np.int16)
        photo = cv2.imread(case["source_path"]).astype(np.int16)
        mask = cv2.imread(str(out / case["mask"]), cv2.IMREAD_GRAYSCALE) > 127
        difference = np.abs(image - photo).max(axis=2)
        inside, outside = difference[mask], difference[~mask]
        assert np.median(outside) < 12 < np.median(inside), case["id"]
    assert checked == SOURCES  # each source's transform cycle gives one edit a sticker layer
