"""The second, tiled look: a grid of photos is looked at cell by cell when the first look finds
nothing, and only then."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import SHARED_DATA, blur_region, jpeg
from PIL import Image

from counterfake.imaging import load_image
from counterfake.signature.extract import make_query
from counterfake.tiles import grid_cells

pytestmark = pytest.mark.skipif(
    not (SHARED_DATA / "people").is_dir(), reason="the real photos live in ../shared/data"
)


def two_by_two(tiles: list[np.ndarray], side: int, gutter: int = 6) -> np.ndarray:
    """Four photos in the cells of a square, on white, each fitted inside its cell's gutter."""
    cell = side // 2
    canvas = np.full((side, side, 3), 255, np.uint8)
    for k, tile in enumerate(tiles):
        scale = min((cell - 2 * gutter) / tile.shape[1], (cell - 2 * gutter) / tile.shape[0])
        size = (round(tile.shape[1] * scale), round(tile.shape[0] * scale))
        x = (k % 2) * cell + (cell - size[0]) // 2
        y = (k // 2) * cell + (cell - size[1]) // 2
        canvas[y : y + size[1], x : x + size[0]] = cv2.resize(
            tile, size, interpolation=cv2.INTER_AREA
        )
    return canvas


def others() -> list[np.ndarray]:
    return [load_image(SHARED_DATA / "distractors" / f"{d}.jpg") for d in ("0101", "0202", "0303")]


def test_a_two_by_two_grid_is_cut_into_its_four_cells():
    first, second, third = others()
    grid = two_by_two([first, second, third, first], 800)
    cells = grid_cells(grid)
    assert len(cells) == 4
    for x0, y0, x1, y1 in cells:
        assert abs((x1 - x0) - 400) < 80 and abs((y1 - y0) - 400) < 80


@pytest.mark.parametrize(
    "path", ["people/0123.jpg", "studio/0006.jpg", "scenes/group1257_b.jpg", "distractors/0035.jpg"]
)
def test_a_single_photo_is_not_a_grid(path):
    assert grid_cells(load_image(SHARED_DATA / path)) == []


def test_a_derivative_in_a_grid_cell_missed_by_the_first_look_is_found_cell_by_cell(registered):
    photo, matcher = registered
    garment = np.asarray(Image.open(SHARED_DATA / "people" / "0123_mask.png")) > 127
    first, second, third = others()
    grid = jpeg(two_by_two([first, blur_region(photo, garment, 12), second, third], 800), 60)
    query = make_query(grid)
    assert matcher.look(query) == []
    [match] = matcher.match(query)
    assert match.kind == "manipulated"
    altered = np.argwhere(match.mask > 0)
    assert altered[:, 1].min() >= 400 and altered[:, 0].max() < 400  # in the top right cell


def test_an_unrelated_grid_is_no_match(registered):
    _, matcher = registered
    first, second, third = others()
    assert matcher.match(make_query(jpeg(two_by_two([first, second, third, first], 800), 60))) == []
