"""The benchmark generator: its files are what the manifest says, and a seed gives the same bytes.

Built on a few sources of ../shared/data (skipped where the checkout has no shared data).
"""

from __future__ import annotations

import hashlib
import itertools
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import SHARED_DATA

from bench.cases import (
    EDITS,
    HAIR,
    PHONES,
    SCENES,
    SIZES,
    TRANSFORMS,
    assign_sources,
    build,
    case_plan,
    edit_region,
    head_mask,
)

SOURCES, DISTRACTORS = 3, 5
SAME_GEOMETRY = ("none", "jpeg", "text_watermark", "tiled_watermark")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, dict]:
    if not (SHARED_DATA / "people").is_dir():
        pytest.skip(f"the benchmark photos live in {SHARED_DATA}, absent from this checkout")
    out = tmp_path_factory.mktemp("cases")
    manifest = build(
        SHARED_DATA, out, limit_sources=SOURCES, limit_distractors=DISTRACTORS, workers=1
    )
    return out, manifest


def read(path: Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    image = cv2.imread(str(path), flags)
    assert image is not None, path
    return image


def source_of(case: dict) -> np.ndarray:
    return read(Path(case["source_path"]))


def source_region(case: dict) -> np.ndarray:
    """The case's edit region in source coordinates, rebuilt from the shared data."""
    stem = Path(case["source_path"]).stem
    garment = read(SHARED_DATA / "people" / f"{stem}_mask.png", cv2.IMREAD_GRAYSCALE) > 127
    labels = read(SHARED_DATA / "people_labels" / f"{stem}.png", cv2.IMREAD_GRAYSCALE)
    return edit_region(garment, head_mask(labels), case["target_fraction"])


def into_case(image: np.ndarray, case: dict, size: tuple[int, int], flags: int) -> np.ndarray:
    """Warp a source-sized image into the case's frame by its photo_quad (pixel corners)."""
    height, width = image.shape[:2]
    corners = np.float32([[0, 0], [width, 0], [width, height]])
    matrix = cv2.getAffineTransform(corners, np.float32(case["photo_quad"][:3]))
    # OpenCV puts pixel centres at integers; the quad uses pixel corners.
    matrix[:, 2] += matrix[:, :2] @ [0.5, 0.5] - 0.5
    return cv2.warpAffine(image, matrix, size, flags=flags)


def test_every_source_gives_9_reposts_and_12_derivatives(built):
    _, manifest = built
    cases = manifest["cases"]
    assert len(cases) == SOURCES * 21
    for source in manifest["sources"]:
        own = [c for c in cases if c["source"] == source["id"]]
        assert all(c["registered"] == source["registered"] for c in own)
        assert sorted(c["transform"] for c in own if c["edit"] is None) == sorted(TRANSFORMS)
        edits = {(c["edit"], c["target_fraction"]) for c in own if c["edit"]}
        assert edits == set(itertools.product(EDITS, SIZES))
    assert manifest["negative_cases"] == [c["id"] for c in cases if not c["registered"]]
    assert len(manifest["distractors"]) == DISTRACTORS
    assert all(Path(p).is_file() for p in manifest["distractors"])


def test_masks_match_their_images(built):
    out, manifest = built
    for case in manifest["cases"]:
        image = read(out / case["path"])
        x0, y0, x1, y1 = case["photo_box"]
        assert 0 <= x0 < x1 <= image.shape[1] and 0 <= y0 < y1 <= image.shape[0]
        if case["expected_kind"] == "repost":
            assert case["mask"] is None and case["region_fraction"] is None
            continue
        mask = read(out / case["mask"], cv2.IMREAD_GRAYSCALE)
        assert mask.shape == image.shape[:2]
        assert set(np.unique(mask)) == {0, 255}
        assert abs(case["region_fraction"] - case["target_fraction"]) < 0.015
        if case["transform"] in (*SAME_GEOMETRY, "flip"):
            assert abs((mask > 0).mean() - case["region_fraction"]) < 1e-3


def test_transforms_give_the_sizes_they_should(built):
    out, manifest = built
    for case in manifest["cases"]:
        height, width = source_of(case).shape[:2]
        case_h, case_w = read(out / case["path"]).shape[:2]
        transform = case["transform"]
        if transform in (*SAME_GEOMETRY, "flip"):
            assert (case_w, case_h) == (width, height)
            assert case["photo_box"] == [0, 0, width, height]
        elif transform == "half":
            assert (case_w, case_h) == (width // 2, height // 2)
        elif transform == "crop":
            assert 0.8 * width <= case_w <= width and 0.8 * height <= case_h <= height
            assert case["photo_box"] == [0, 0, case_w, case_h]
        elif transform == "screenshot":
            assert (case_w, case_h) in PHONES
        else:
            assert max(case_w, case_h) == 1024
        assert (case["original_box"] is not None) == (transform == "collage" and bool(case["edit"]))


def test_ground_truth_and_photo_quad_follow_the_pixels(built):
    """The mask is the source region moved exactly as the pixels were, and the quad says where."""
    out, manifest = built
    for case in manifest["cases"]:
        image = read(out / case["path"])
        size = (image.shape[1], image.shape[0])
        x0, y0, x1, y1 = case["photo_box"]
        if case["edit"] is None and "watermark" not in case["transform"]:
            photo = into_case(source_of(case), case, size, cv2.INTER_LINEAR)
            difference = cv2.absdiff(photo, image)[y0:y1, x0:x1]
            assert difference.mean() < 4, case["id"]
        if case["edit"] is not None:
            region = source_region(case).astype(np.uint8) * 255
            expected = into_case(region, case, size, cv2.INTER_NEAREST) > 0
            mask = read(out / case["mask"], cv2.IMREAD_GRAYSCALE) > 0
            assert (expected & mask).sum() / (expected | mask).sum() > 0.95, case["id"]


def test_edits_change_only_the_masked_pixels_and_never_the_hair(built):
    out, manifest = built
    for case in manifest["cases"]:
        if case["edit"] is None or case["transform"] not in ("none", "jpeg"):
            continue
        mask = read(out / case["mask"], cv2.IMREAD_GRAYSCALE) > 0
        difference = cv2.absdiff(read(out / case["path"]), source_of(case)).mean(axis=2)
        assert difference[~mask].mean() < 3, case["id"]
        assert difference[mask].mean() > 8, case["id"]
        stem = Path(case["source_path"]).stem
        labels = read(SHARED_DATA / "people_labels" / f"{stem}.png", cv2.IMREAD_GRAYSCALE)
        assert not (mask & (labels == HAIR)).any(), case["id"]


def test_the_same_seed_gives_the_same_bytes_whatever_the_limit(built, tmp_path):
    out, manifest = built
    again = build(SHARED_DATA, tmp_path, limit_sources=1, limit_distractors=0, workers=1)
    assert again["cases"] == manifest["cases"][:21]
    for case in again["cases"]:
        for relative in filter(None, (case["path"], case["mask"])):
            first = hashlib.sha256((out / relative).read_bytes()).digest()
            assert first == hashlib.sha256((tmp_path / relative).read_bytes()).digest()


def test_registration_and_transforms_are_balanced():
    """A seeded half is registered; within each half every (edit, size) meets every transform
    equally often, give or take one."""
    ids = [f"{i:04d}" for i in range(1, 251)]
    registered, offsets = assign_sources(ids, seed=20261122)
    assert len(registered) == 125
    for half in (registered, set(ids) - registered):
        meetings = Counter(
            plan for source in half for plan in case_plan(offsets[source]) if plan[0] is not None
        )
        assert len(meetings) == len(EDITS) * len(SIZES) * len(TRANSFORMS)
        assert max(meetings.values()) - min(meetings.values()) <= 1


def test_the_region_reaches_its_target_without_entering_the_head():
    """Grown round the head, topped up beyond it when walled off, or shrunk when too big."""
    head = np.zeros((100, 100), bool)
    head[40:50] = True  # a band across the image walls the garment off from the top
    garment = np.zeros_like(head)
    garment[70:80, 40:60] = True
    for target in (0.3, 0.6, 0.01):
        region = edit_region(garment, head, target)
        assert not (region & head).any()
        assert abs(region.mean() - target) < 0.01
    assert edit_region(garment, head, 0.6)[:40].any()  # topped up above the wall


def test_cases_record_the_other_photos_whose_pixels_they_hold(built):
    """A pasted texture comes from a scene distractor, and a repost collage shows a distractor
    beside the photo: a pairs benchmark must know both, or it calls those true relations false."""
    _, manifest = built
    for case in manifest["cases"]:
        if case["edit"] == "paste":
            donor = Path(case["donor"])
            assert donor.parent.name == "distractors" and int(donor.stem) in SCENES
            assert donor.is_file()
        else:
            assert case["donor"] is None
        if case["edit"] is None and case["transform"] == "collage":
            assert Path(case["beside"]).parent.name == "distractors"
        else:
            assert case["beside"] is None
