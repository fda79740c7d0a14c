"""Which of a photo's untouched copies is taken for the original of its cluster.

Same-size copies say nothing by their geometry, and an overlay (a logo, a stamp, a caption)
thin enough not to count as an alteration would win on the counts when it is re-saved finer
than the photo. The contest compares the copies directly, with the rest of the group as
witnesses: the overlay is in one copy alone, so the others side with the clean one.
"""

from __future__ import annotations

import random
import shutil
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import SHARED_DATA, read_rgb

from bench.cases import apply_edit, edit_region, head_mask
from counterfake.matching import Thresholds
from counterfake.pairs import Collection, PairFinder, Picture, Relation, organise, overlay_contest
from counterfake.signature.extract import make_signature


def stamped(rgb: np.ndarray) -> np.ndarray:
    """A channel's stamp: thin rings and a cross, semi-opaque white, in the upper left.

    Made here, unlike the benchmark's text watermarks: the rule must hold for any overlay.
    """
    height, width = rgb.shape[:2]
    layer = rgb.copy()
    centre = (width // 4, height // 5)
    radius = min(width, height) // 8
    stroke = max(2, width // 150)
    for ring in (radius, radius * 2 // 3):
        cv2.circle(layer, centre, ring, (255, 255, 255), stroke, cv2.LINE_AA)
    for dx, dy in ((1, 1), (1, -1)):
        start = (centre[0] - dx * radius // 2, centre[1] - dy * radius // 2)
        end = (centre[0] + dx * radius // 2, centre[1] + dy * radius // 2)
        cv2.line(layer, start, end, (255, 255, 255), stroke, cv2.LINE_AA)
    return cv2.addWeighted(layer, 0.7, rgb, 0.3, 0)


def _jpeg(path: Path, rgb: np.ndarray, quality: int) -> str:
    assert cv2.imwrite(str(path), rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    return str(path)


def test_a_stamped_copy_saved_finer_than_the_photo_is_not_taken_for_the_original(tmp_path):
    """The photo, two plain re-saves, a half-size copy, an edit and a stamped copy saved at a
    finer JPEG quality than any: the photo or a re-save of it is the original, and the stamped
    copy is reported as its derivative."""
    if not (SHARED_DATA / "people").is_dir():
        pytest.skip(f"the benchmark photos live in {SHARED_DATA}, absent from this checkout")
    stem = "0007"
    source = str(shutil.copy(SHARED_DATA / "people" / f"{stem}.jpg", tmp_path / "photo.jpg"))
    photo = read_rgb(Path(source))
    garment = cv2.imread(str(SHARED_DATA / "people" / f"{stem}_mask.png"), 0) > 127
    labels = cv2.imread(str(SHARED_DATA / "people_labels" / f"{stem}.png"), 0)
    region = edit_region(garment, head_mask(labels), 0.3)
    edited, _ = apply_edit(photo, region, "blur", random.Random(11), [])
    half = cv2.resize(photo, (photo.shape[1] // 2, photo.shape[0] // 2), cv2.INTER_AREA)
    stamp = _jpeg(tmp_path / "stamped.jpg", stamped(photo), 99)
    plain = [_jpeg(tmp_path / f"resaved-{q}.jpg", photo, q) for q in (72, 80)]
    others = [_jpeg(tmp_path / "half.jpg", half, 85), _jpeg(tmp_path / "edit.jpg", edited, 85)]
    doc = PairFinder(workers=1).find([source, stamp, *plain, *others]).to_json()
    [cluster] = doc["clusters"]
    assert cluster["original"] in (source, *plain)
    [pair] = [p for p in doc["pairs"] if p["derivative"] == stamp]
    assert pair["source"] == cluster["original"]


def test_the_copy_the_witnesses_side_with_beats_the_one_with_an_overlay():
    """On aligned grids: B is A with an overlay in a few cells, the witnesses are A with noise
    of their own (and one with its own edit elsewhere). A and its re-save each beat B."""
    rng = np.random.default_rng(5)
    seen = np.ones((48, 48), bool)
    base = rng.uniform(20, 230, (48, 48, 4)).astype(np.float32)
    base[:, :, 3] = rng.uniform(2, 30, (48, 48))

    def copy_of(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return cells + rng.normal(0, 0.7, cells.shape).astype(np.float32), seen

    overlaid = base.copy()
    overlaid[5:9, 5:20, 0] += 25.0  # a light band: a caption's strip
    overlaid[5:9, 5:20, 3] += 12.0
    edited = base.copy()
    edited[30:45, 10:30, :3] = 128.0  # someone's edit, elsewhere
    clean, with_overlay, resaved = 0, 1, 2
    grids = {
        clean: (base, seen),
        with_overlay: (overlaid, seen),
        resaved: copy_of(base),
        3: copy_of(base),
        4: copy_of(base),
        5: copy_of(edited),
    }
    wins = overlay_contest([with_overlay, clean, resaved], grids, Thresholds())
    assert wins.get(with_overlay, 0) == 0
    assert wins[clean] >= 1 and wins[resaved] >= 1  # each beat the overlay


def _relation(source: int, derivative: int, shown: float, covered: float) -> Relation:
    return Relation(
        source=source,
        derivative=derivative,
        kind="repost",
        score=0.9,
        altered_fraction=0.0,
        inliers=60,
        mask=None,
        shown=shown,
        covered=covered,
        resolution=1.0,
        seam=False,
        mirrored=False,
        agreeing=0.9,
    )


def test_a_relation_measured_only_in_the_smaller_image_is_asked_for_the_other_way():
    """A photo (0, with its copy 1) and an image (2) that holds it in under half of its frame:
    a collage of it, or a photo it was cropped from. Measured only in the photo's frame (the
    photo was verified to hold image 2), no seam could be seen; only image 2's pixels can show
    one, so organise asks for (photo, image 2) to be verified with image 2 as the derivative."""
    pictures = [Picture(key, f"{key}.jpg", f"{key}.jpg") for key in range(3)]
    collection = Collection(pictures)
    collection.relations[0, 1] = _relation(0, 1, 1.0, 1.0)
    collection.relations[2, 0] = _relation(2, 0, shown=0.46, covered=1.0)
    assert organise(collection).unmeasured == [(0, 2)]
    collection.relations[0, 2] = _relation(0, 2, shown=1.0, covered=0.46)
    assert organise(collection).unmeasured == []


def test_a_copy_resized_down_loses_the_contest_to_the_photo(tmp_path):
    """Even when no relation between them measured it, and with no witness to compare them:
    the contest sees that the photo has twice the half-size copy's pixels (linear) of what
    they share, and counts the copy as resized down."""
    if not (SHARED_DATA / "people").is_dir():
        pytest.skip(f"the benchmark photos live in {SHARED_DATA}, absent from this checkout")
    photo = read_rgb(SHARED_DATA / "people" / "0007.jpg")
    half = cv2.resize(photo, (photo.shape[1] // 2, photo.shape[0] // 2), cv2.INTER_AREA)
    finder = PairFinder(workers=1)
    try:
        for key, rgb in enumerate((half, photo)):
            path = _jpeg(tmp_path / f"{key}.jpg", rgb, 90)
            finder.add(key, make_signature(rgb, path, str(key), exchange=False, face=False), path)
        wins = finder.contest([0, 1], [])
    finally:
        finder.close()
    assert wins[1] >= 1 and wins.get(0, 0) == 0


def _grids_with_overlay(rng: np.random.Generator) -> tuple[dict, np.ndarray, np.ndarray]:
    """A photo's cells, the same with a light caption band, and the cells they cover."""
    seen = np.ones((48, 48), bool)
    base = rng.uniform(40, 160, (48, 48, 4)).astype(np.float32)
    base[:, :, 3] = rng.uniform(2, 30, (48, 48))
    captioned = base.copy()
    captioned[5:9, 5:20, 0] += 25.0
    return {"seen": seen}, base, captioned


def _noisy(cells: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return cells + rng.normal(0, 0.7, cells.shape).astype(np.float32)


def test_a_witness_altered_where_two_copies_differ_takes_no_side():
    """Witnesses whose own edit lightened the band where B carries a light caption are
    nearer to B there, but far from both: they say nothing of which copy is the photo's.
    The two plain copies side with A, and A wins."""
    rng = np.random.default_rng(9)
    frame, base, captioned = _grids_with_overlay(rng)
    seen = frame["seen"]
    lightened = base.copy()
    lightened[2:12, 2:26, 0] += 70.0  # someone's edit over the whole band, much lighter
    clean, with_caption = 0, 1
    grids = {clean: (base, seen), with_caption: (captioned, seen)}
    grids |= {key: (_noisy(base, rng), seen) for key in (2, 3)}
    grids |= {key: (_noisy(lightened, rng), seen) for key in (4, 5, 6, 7)}
    wins = overlay_contest([clean, with_caption], grids, Thresholds())
    assert wins.get(clean, 0) == 1 and wins.get(with_caption, 0) == 0


def test_the_photo_and_its_resave_dispute_no_cell_so_neither_beats_the_other():
    """A re-save moves every cell by a fraction of what matching calls altered: no cell is
    disputed, no witness takes a side, and neither copy wins (the finer save decides later)."""
    rng = np.random.default_rng(4)
    frame, base, captioned = _grids_with_overlay(rng)
    seen = frame["seen"]
    photo, resave = 0, 1
    grids = {photo: (base, seen), resave: (_noisy(base, rng), seen)}
    grids |= {key: (_noisy(base, rng), seen) for key in (2, 3, 4)}
    grids[5] = (captioned, seen)
    wins = overlay_contest([photo, resave], grids, Thresholds())
    assert wins.get(photo, 0) == 0 and wins.get(resave, 0) == 0


def framed_on_screen(rgb: np.ndarray) -> np.ndarray:
    """The photo enlarged twice onto a tall light-grey screen with dark bars above and below
    (drawn here, unlike the benchmark's phone screenshots)."""
    height, width = rgb.shape[:2]
    enlarged = cv2.resize(rgb, (2 * width, 2 * height), interpolation=cv2.INTER_CUBIC)
    screen = np.full((3 * height, 2 * width + 80, 3), 242, np.uint8)
    screen[: height // 3] = (30, 34, 40)
    screen[-height // 4 :] = (30, 34, 40)
    top = (screen.shape[0] - 2 * height) // 2
    screen[top : top + 2 * height, 40 : 40 + 2 * width] = enlarged
    return screen


def test_a_screen_that_enlarges_the_photo_does_not_win_by_its_pixel_count(tmp_path):
    """The screenshot shows the photo with twice its pixels (linear), but in part of its frame:
    an enlargement, not the photo the others were resized from. Only copies that show the
    same frame are ranked by their pixels, as the resolution vote does."""
    if not (SHARED_DATA / "people").is_dir():
        pytest.skip(f"the benchmark photos live in {SHARED_DATA}, absent from this checkout")
    photo = read_rgb(SHARED_DATA / "people" / "0012.jpg")
    finder = PairFinder(workers=1)
    try:
        for key, rgb in enumerate((photo, framed_on_screen(photo))):
            path = _jpeg(tmp_path / f"{key}.jpg", rgb, 90)
            finder.add(key, make_signature(rgb, path, str(key), exchange=False, face=False), path)
        wins = finder.contest([0, 1], [])
    finally:
        finder.close()
    assert wins.get(1, 0) == 0


def test_the_contest_winner_is_measured_against_the_runners_up_and_loses_if_it_frames_them():
    """A photo (0), its re-save (3), a crop (2) and a screenshot (1) measured only against the
    crop, which it holds with no seam around it (the photo continues beyond a crop's edge).
    Suppose the screenshot wins the contest: organise asks for it to be verified as the
    derivative of the runners-up, and once that shows the photo framed by a seam in it, the
    screenshot has lost a direction vote and is no longer the original."""
    pictures = [Picture(key, f"{key}.jpg", f"{key}.jpg") for key in range(4)]
    collection = Collection(pictures)
    collection.relations[0, 3] = _relation(0, 3, 1.0, 1.0)
    collection.relations[0, 2] = _relation(0, 2, shown=0.82, covered=1.0)
    collection.relations[2, 1] = _relation(2, 1, shown=1.0, covered=0.5)

    def screenshot_wins(contenders: list[int], witnesses: list[int]) -> dict[int, int]:
        return {key: 3 if key == 1 else 0 for key in contenders}

    first = organise(collection, screenshot_wins)
    [cluster] = first.clusters
    assert cluster.original == 1
    assert {(0, 1), (3, 1)} & set(first.unmeasured)
    collection.relations[0, 1] = replace(_relation(0, 1, 1.0, 0.55), seam=True)
    [cluster] = organise(collection, screenshot_wins).clusters
    assert cluster.original in (0, 3)


def test_of_the_photo_and_its_resaves_the_finest_save_is_the_original(tmp_path):
    """The photo saved at quality 93, three re-saves of it at 70-85, a copy with a ring stamp
    and a blurred edit. Nothing in the grid tells the photo from a re-save, and every
    re-save is coarser: the photo is the original, and each re-save its derivative."""
    if not (SHARED_DATA / "people").is_dir():
        pytest.skip(f"the benchmark photos live in {SHARED_DATA}, absent from this checkout")
    stem = "0150"
    photo = read_rgb(SHARED_DATA / "people" / f"{stem}.jpg")
    source = _jpeg(tmp_path / "photo.jpg", photo, 93)
    decoded = read_rgb(Path(source))
    resaves = [_jpeg(tmp_path / f"resaved-{q}.jpg", decoded, q) for q in (70, 78, 85)]
    garment = cv2.imread(str(SHARED_DATA / "people" / f"{stem}_mask.png"), 0) > 127
    labels = cv2.imread(str(SHARED_DATA / "people_labels" / f"{stem}.png"), 0)
    edited, _ = apply_edit(
        decoded, edit_region(garment, head_mask(labels), 0.3), "blur", random.Random(3), []
    )
    others = [
        _jpeg(tmp_path / "stamped.jpg", stamped(decoded), 88),
        _jpeg(tmp_path / "edit.jpg", edited, 85),
    ]
    doc = PairFinder(workers=1).find([source, *resaves, *others]).to_json()
    [cluster] = doc["clusters"]
    assert cluster["original"] == source
    sources = {p["derivative"]: p["source"] for p in doc["pairs"]}
    assert all(sources[resave] == source for resave in resaves)


def test_the_photo_and_its_resave_count_each_others_wins():
    """The re-save covers the caption's upper rows in no cell; two reposts of the captioned
    copy see only those rows. Against the captioned copy, the re-save wins (where it is seen,
    only plain copies testify) while the photo's dispute is a tie (the two reposts side with
    the caption). The photo and the re-save dispute no cell: one picture, whose wins each
    counts."""
    rng = np.random.default_rng(6)
    frame, base, captioned = _grids_with_overlay(rng)
    seen = frame["seen"]
    partly = seen.copy()
    partly[5:7, 5:20] = False
    upper_rows = np.zeros_like(seen)
    upper_rows[5:7, :] = True
    photo, resave, with_caption = 0, 1, 2
    grids = {
        photo: (base, seen),
        resave: (_noisy(base, rng), partly),
        with_caption: (captioned, seen),
        3: (_noisy(base, rng), seen),
        4: (_noisy(captioned, rng), upper_rows),
        5: (_noisy(captioned, rng), upper_rows),
    }
    wins = overlay_contest([photo, resave, with_caption], grids, Thresholds())
    assert wins[photo] == wins[resave] == 1 and wins.get(with_caption, 0) == 0
