"""Local features: spread-ordered, and a scanned image's features in its working frame."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import SHARED_DATA
from PIL import Image

from counterfake.imaging import load_image
from counterfake.signature.extract import (
    QUERY_FEATURES,
    QUERY_MIN_SIDE,
    QUERY_ORB,
    REFERENCE_FEATURES,
    grey,
    make_query,
    make_signature,
    query_features,
)
from counterfake.signature.features import (
    LEVEL_GROUPS,
    SPREAD_GRID,
    OrbSettings,
    extract_features,
)


def buckets(features, shape, levels: int = 8) -> np.ndarray:
    height, width = shape
    col = np.minimum((features.xy[:, 0] * SPREAD_GRID / width).astype(int), SPREAD_GRID - 1)
    row = np.minimum((features.xy[:, 1] * SPREAD_GRID / height).astype(int), SPREAD_GRID - 1)
    group = np.minimum(features.octave.astype(int) * LEVEL_GROUPS // levels, LEVEL_GROUPS - 1)
    return (row * SPREAD_GRID + col) * LEVEL_GROUPS + group


def rounds_of(bucket: np.ndarray) -> np.ndarray:
    """A feature's round: how many of its bucket came before it."""
    return np.array([(bucket[:i] == b).sum() for i, b in enumerate(bucket)])


def test_features_are_dealt_round_robin_over_cells_and_scales(photo):
    gray = grey(photo)
    features = extract_features(gray, REFERENCE_FEATURES)
    bucket = buckets(features, gray.shape)
    rounds = rounds_of(bucket)  # rounds never go back
    assert len(features) == REFERENCE_FEATURES
    assert (np.diff(rounds) >= 0).all()
    assert rounds[0] == 0 and len(np.unique(bucket[rounds == 0])) > SPREAD_GRID**2 // 2


def test_scaled_features_move_with_the_frame(photo):
    features = extract_features(grey(photo), 50)
    doubled = features.scaled(2.0, 1.5)
    assert np.allclose(doubled.xy, features.xy * [2.0, 1.5])
    assert np.allclose(doubled.size, features.size * 1.75)
    assert (doubled.descriptors == features.descriptors).all()


def test_a_small_scanned_image_keeps_its_finest_scale(photo):
    work = grey(cv2.resize(photo, (384, QUERY_MIN_SIDE), interpolation=cv2.INTER_AREA))
    found, direct = query_features(work), extract_features(work, 1000, QUERY_ORB)
    assert (found.xy == direct.xy).all() and (found.descriptors == direct.descriptors).all()


def test_a_scanned_image_keeps_the_features_orb_finds_for_it_in_spread_order(photo):
    """No spares are detected for a scanned image: the QUERY_FEATURES that ORB itself keeps are
    the features, still dealt out round-robin over cells and scales."""
    work = grey(cv2.resize(photo, (384, QUERY_MIN_SIDE), interpolation=cv2.INTER_AREA))
    found = query_features(work)
    keypoints = cv2.ORB_create(
        nfeatures=QUERY_FEATURES,
        scaleFactor=QUERY_ORB.scale_factor,
        nlevels=QUERY_ORB.levels,
        edgeThreshold=15,
        fastThreshold=QUERY_ORB.fast_threshold,
    ).detect(work)
    assert sorted(map(tuple, found.xy.tolist())) == sorted(k.pt for k in keypoints)
    rounds = rounds_of(buckets(found, work.shape, QUERY_ORB.levels))
    assert (np.diff(rounds) >= 0).all() and rounds[-1] > 0


def test_a_large_scanned_image_has_features_over_its_whole_working_frame(photo):
    large = cv2.resize(photo, (720, 960), interpolation=cv2.INTER_LINEAR)
    query = make_query(large)
    xy = query.features.xy
    height, width = query.work.shape[:2]
    assert len(xy) > 500
    assert (xy >= 0).all() and (xy[:, 0] < width).all() and (xy[:, 1] < height).all()
    assert xy[:, 0].max() > 0.8 * width and xy[:, 1].max() > 0.8 * height


def test_a_large_copy_meets_the_registered_photo_at_the_same_points(photo):
    """Found at a reduced size, the scanned features still land where the photo's do."""
    reference = make_signature(photo, "photo", "").features
    large = cv2.resize(photo, (720, 960), interpolation=cv2.INTER_LINEAR)
    query = make_query(large)
    to_reference = 512 / 960  # the registered photo is analysed at 512 pixels on its longer side
    distance, nearest = cv2.batchDistance(
        reference.descriptors,
        query.features.descriptors,
        cv2.CV_32S,
        normType=cv2.NORM_HAMMING,
        K=1,
    )
    close = distance[:, 0] <= 40
    landed = np.linalg.norm(query.features.xy[nearest[:, 0]] * to_reference - reference.xy, axis=1)
    assert close.sum() > 100
    assert np.median(landed[close]) < 1.5


def test_features_keep_the_fields_of_orb_keypoints(photo):
    gray = grey(photo)
    features = extract_features(gray, 20_000)  # more than ORB finds: every keypoint is kept
    detected = int(20_000 * OrbSettings().detected_per_kept)  # as many as extract_features asks
    keypoints, _ = cv2.ORB_create(
        nfeatures=detected, scaleFactor=1.2, nlevels=8, edgeThreshold=15, fastThreshold=10
    ).detectAndCompute(gray, None)
    expected = np.array([(*k.pt, k.size, k.angle, k.octave) for k in keypoints], np.float32)
    kept = np.column_stack(
        [features.xy, features.size, features.angle, features.octave.astype(np.float32)]
    )

    def rows(table: np.ndarray) -> np.ndarray:
        return table[np.lexsort(table.T[::-1])]

    assert np.array_equal(rows(kept), rows(expected))


@pytest.mark.skipif(not (SHARED_DATA / "people").is_dir(), reason="needs ../shared/data")
def test_a_patterned_garment_does_not_take_most_of_a_photos_features():
    """people/0084 wears a floral print, a fifth of the photo and most of its strong corners;
    what a derivative keeps (face, hair, the brick wall) must hold most of the features, so
    the spread selection needs spares outside the garment to choose from."""
    photo = load_image(SHARED_DATA / "people" / "0084.jpg")
    garment = np.asarray(Image.open(SHARED_DATA / "people" / "0084_mask.png")) > 127
    signature = make_signature(photo, "0084", "0" * 64, exchange=False, face=False)
    scale = photo.shape[1] / signature.frame_width
    xy = np.minimum((signature.features.xy * scale).astype(int), np.array(garment.shape[::-1]) - 1)
    assert garment[xy[:, 1], xy[:, 0]].mean() < 0.5
