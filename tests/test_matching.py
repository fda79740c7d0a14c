"""Matching: reposts and manipulated derivatives are found, told apart and localised."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import blur_region, jpeg

from counterfake.cells import cell_differences, compare_cells
from counterfake.index.candidates import CandidateIndex
from counterfake.matching import Matcher
from counterfake.signature.extract import make_query, make_signature
from counterfake.signature.grid import GRID_CHANNELS, GRID_COLS, GRID_ROWS
from counterfake.thresholds import Thresholds


@pytest.fixture(scope="module")
def matcher(photo: np.ndarray) -> Matcher:
    signature = make_signature(photo, label="photo.jpg", sha256="0" * 64)
    index = CandidateIndex()
    index.add(7, signature)
    return Matcher(index, {7: signature}.__getitem__)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def test_unaltered_copy_is_a_repost(matcher, photo):
    [match] = matcher.match(make_query(jpeg(photo, 80)))
    assert (match.photo_id, match.kind, match.mask) == (7, "repost", None)
    assert match.altered_fraction == 0.0
    assert 0.5 < match.score <= 1.0


def test_half_size_recompressed_mirrored_copy_is_a_repost(matcher, photo):
    small = cv2.resize(photo[:, ::-1], (240, 320), interpolation=cv2.INTER_AREA)
    [match] = matcher.match(make_query(jpeg(small, 65)))
    assert match.kind == "repost"


def test_cropped_copy_is_a_repost(matcher, photo):
    [match] = matcher.match(make_query(jpeg(photo[40:-30, 30:-20], 85)))
    assert match.kind == "repost"


def test_replaced_region_is_manipulated_and_masked_in_scanned_frame(matcher, photo, garment):
    edited = jpeg(blur_region(photo, garment), 85)
    [match] = matcher.match(make_query(edited))
    assert match.kind == "manipulated"
    assert match.mask.shape == garment.shape
    assert iou(match.mask > 0, garment) > 0.6
    assert 0.5 * garment.mean() < match.altered_fraction < 1.5 * garment.mean()


def test_mask_follows_a_flipped_and_scaled_derivative(matcher, photo, garment):
    edited = blur_region(photo, garment)[:, ::-1]
    small = cv2.resize(edited, (360, 480), interpolation=cv2.INTER_AREA)
    [match] = matcher.match(make_query(jpeg(small, 80)))
    truth = cv2.resize(garment[:, ::-1].astype(np.uint8), (360, 480)) > 0
    assert match.kind == "manipulated"
    assert iou(match.mask > 0, truth) > 0.6


def test_before_after_collage_finds_both_and_masks_the_fake_half(matcher, photo, garment):
    collage = np.full((640, 980, 3), 255, np.uint8)
    collage[:, :480] = photo
    collage[:, 500:] = blur_region(photo, garment)
    [match] = matcher.match(make_query(jpeg(collage, 85)))
    assert match.kind == "manipulated"
    assert len(match.instances) == 2
    truth = np.zeros(collage.shape[:2], bool)
    truth[:, 500:] = garment
    assert iou(match.mask > 0, truth) > 0.5


def test_unrelated_image_matches_nothing(matcher, unrelated):
    assert matcher.match(make_query(unrelated)) == []


def test_blank_and_tiny_images_match_nothing(matcher):
    assert matcher.match(make_query(np.zeros((300, 200, 3), np.uint8))) == []
    assert matcher.match(make_query(np.full((3, 2, 3), 200, np.uint8))) == []


def test_withdrawn_photo_stops_matching(photo):
    signature = make_signature(photo, label="photo.jpg", sha256="0" * 64)
    index = CandidateIndex()
    index.add(1, signature)
    matcher = Matcher(index, {1: signature}.__getitem__)
    query = make_query(photo)
    assert matcher.match(query)
    index.remove(1)
    assert matcher.match(query) == []


def test_a_flattened_cell_under_a_steep_contrast_fit_is_a_texture_difference_not_nan():
    """A copy whose contrast was scaled down everywhere is fitted with a steep gain and a
    negative offset; a cell it flattened to nothing (a blur) then gets a negative fitted
    contrast, which must read as a large texture difference, not as an undefined one."""
    rng = np.random.default_rng(11)
    shape = (GRID_ROWS, GRID_COLS, GRID_CHANNELS)
    scanned = np.full(shape, 128.0, np.float32)
    scanned[:, :, 3] = rng.uniform(20, 60, shape[:2])
    photo = scanned.copy()
    photo[:, :, 3] = 2.0 * scanned[:, :, 3] - 20.0
    scanned[:3, :3, 3] = 0.0  # blurred flat in the copy; still textured in the photo
    visible = np.ones(shape[:2], bool)
    _, texture = cell_differences(photo, scanned, visible)
    assert np.isfinite(texture).all()
    assert texture[:3, :3].min() > 1.0 > np.percentile(texture[3:, 3:], 90)


def textured_cells(seed: int) -> np.ndarray:
    """A grid of cells with varied colour and texture, as a photo's grid holds them."""
    rng = np.random.default_rng(seed)
    cells = np.empty((GRID_ROWS, GRID_COLS, GRID_CHANNELS), np.float32)
    cells[:, :, 0] = rng.uniform(40, 220, (GRID_ROWS, GRID_COLS))
    cells[:, :, 1:3] = rng.uniform(110, 150, (GRID_ROWS, GRID_COLS, 2))
    cells[:, :, 3] = rng.uniform(4, 40, (GRID_ROWS, GRID_COLS))
    return cells


def test_a_flat_fill_over_most_of_the_photo_leaves_the_rest_agreeing():
    """60% of the photo, a plain garment, replaced by one flat colour: the cells holding the
    verified features, all in the surviving 40%, anchor the contrast fit, so the survivors
    still agree and the fill is altered; judged on all cells alike, the fill's flatness would
    scale every survivor's texture down to it."""
    photo = textured_cells(3)
    fill = np.zeros((GRID_ROWS, GRID_COLS), bool)
    fill[GRID_ROWS * 2 // 5 :, :] = True
    photo[fill, 3] = np.random.default_rng(4).uniform(4, 5, fill.sum())  # a plain garment
    scanned = photo.copy()
    scanned[fill] = [150.0, 140.0, 135.0, 0.0]
    visible = np.ones_like(fill)
    trusted = ~fill & (np.indices(fill.shape).sum(axis=0) % 5 == 0)
    t = Thresholds()
    altered, agreeing, _ = compare_cells(photo, scanned, visible, t, trusted)
    unanchored = compare_cells(photo, scanned, visible, t).agreeing
    assert unanchored[~fill].mean() < 0.5  # what anchoring prevents
    assert agreeing[~fill].mean() > 0.95
    assert altered[fill].mean() > 0.95
    assert not altered[~fill].any()


def test_cells_enclosed_by_an_altered_region_are_part_of_it():
    """A garment blurred where it was plain changes nothing a cell records there: the cells
    the altered ring encloses belong to the one regenerated region."""
    photo = textured_cells(5)
    scanned = photo.copy()
    ring = np.zeros((GRID_ROWS, GRID_COLS), bool)
    ring[20:40, 10:30] = True
    ring[24:36, 14:26] = False  # the plain middle: unchanged
    scanned[ring, 0] = np.clip(scanned[ring, 0] + 60, 0, 255)
    visible = np.ones_like(ring)
    altered = compare_cells(photo, scanned, visible, Thresholds()).altered
    assert altered[20:40, 10:30].all()
    assert not altered[:18].any()


def test_the_mask_takes_the_weakly_changed_edge_of_an_altered_region_and_the_decision_does_not():
    """A blur flattens a region's middle and only softens its edge; the edge alone would be
    noise, but beside the clearly altered middle it is the region's edge. The mask takes it;
    what decisions count (the altered cells) does not, and weak changes apart from any
    altered region are in neither."""
    photo = textured_cells(6)
    scanned = photo.copy()
    middle = np.zeros((GRID_ROWS, GRID_COLS), bool)
    middle[20:30, 10:30] = True
    edge = np.zeros_like(middle)
    edge[17:33, 7:33] = True
    edge &= ~middle
    apart = np.zeros_like(middle)
    apart[40:46, 36:44] = True
    rng = np.random.default_rng(7)
    scanned[:, :, 3] *= np.exp(rng.normal(0.0, 0.3, middle.shape))  # a noisy copy
    photo[middle | edge | apart, 3] = 30.0  # a textured garment
    scanned[middle, 3] = 0.5  # flattened
    scanned[edge | apart, 3] = 12.0  # softened: beyond the absolute threshold, within the noise
    visible = np.ones_like(middle)
    altered, _, masked = compare_cells(photo, scanned, visible, Thresholds())
    assert altered[middle].mean() > 0.95 and not altered[edge | apart].any()
    assert masked[middle | edge].mean() > 0.95
    assert not masked[apart].any() and not masked[:15].any()
