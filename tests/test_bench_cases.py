"""The benchmark generator: deterministic, and its ground truth lines up with its images."""

from __future__ import annotations

import hashlib
import json

import cv2
import pytest
from conftest import SHARED_DATA

pytestmark = pytest.mark.skipif(
    not (SHARED_DATA / "people").is_dir(), reason="the benchmark photos live in ../shared/data"
)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from bench.cases import build

    out = tmp_path_factory.mktemp("cases")
    return out, build(SHARED_DATA, out, seed=7, limit_sources=2, workers=1)


def test_every_source_gives_9_reposts_and_12_derivatives(built):
    _, manifest = built
    assert len(manifest["cases"]) == 2 * 21
    kinds = [c["expected_kind"] for c in manifest["cases"]]
    assert kinds.count("repost") == 18 and kinds.count("manipulated") == 24
    assert sum(s["registered"] for s in manifest["sources"]) == 1


def test_masks_match_their_images_and_the_region_sizes(built):
    out, manifest = built
    for case in manifest["cases"]:
        image = cv2.imread(str(out / case["path"]))
        assert image is not None
        if case["expected_kind"] == "repost":
            assert case["mask"] is None
            continue
        mask = cv2.imread(str(out / case["mask"]), cv2.IMREAD_GRAYSCALE)
        assert mask.shape == image.shape[:2]
        assert mask.any()
        assert abs(case["region_fraction"] - case["target_fraction"]) < 0.05
        if case["transform"] in ("none", "jpeg", "flip", "text_watermark", "tiled_watermark"):
            assert abs((mask > 127).mean() - case["region_fraction"]) < 0.01


def test_same_seed_gives_the_same_bytes(built, tmp_path):
    from bench.cases import build

    out, manifest = built
    again = build(SHARED_DATA, tmp_path, seed=7, limit_sources=2, workers=1)
    assert json.dumps(again["cases"]) == json.dumps(manifest["cases"])
    for case in manifest["cases"][:5]:
        first = hashlib.sha256((out / case["path"]).read_bytes()).digest()
        assert first == hashlib.sha256((tmp_path / case["path"]).read_bytes()).digest()
