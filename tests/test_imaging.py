"""Safe decoding: every kind of bad or unusual file gives pixels or one clear line."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from counterfake.imaging import ImageError, decode_image, load_image, read_bytes
from counterfake.sources.files import iter_image_files


def encoded(image: Image.Image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format, **options)
    return buffer.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def assert_one_line_error(path: Path, problem: str, **options) -> None:
    with pytest.raises(ImageError) as caught:
        load_image(path, **options)
    message = str(caught.value)
    assert "\n" not in message
    assert str(path) in message
    assert problem in message


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims the given size (the pixel data is never reached)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        checksum = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + checksum

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


def test_empty_file(tmp_path):
    assert_one_line_error(write(tmp_path / "empty.jpg", b""), "empty file")


def test_truncated_jpeg(tmp_path):
    data = encoded(Image.new("RGB", (300, 200), (200, 30, 30)), "JPEG", quality=90)
    assert_one_line_error(write(tmp_path / "cut.jpg", data[: len(data) // 2]), "truncated")


def test_random_bytes_named_jpg(tmp_path):
    noise = np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    assert_one_line_error(write(tmp_path / "noise.jpg", noise), "not a recognised image format")


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    path = write(tmp_path / "bomb.png", png_declaring(30_000, 30_000))
    assert_one_line_error(path, "over the limit of 40000000")


def test_pixel_limit_is_configurable(tmp_path):
    path = write(tmp_path / "ok.png", encoded(Image.new("RGB", (100, 100)), "PNG"))
    assert load_image(path).shape == (100, 100, 3)
    assert_one_line_error(path, "over the limit of 5000", max_pixels=5000)


def test_huge_dimensions_are_refused(tmp_path):
    path = write(tmp_path / "wide.png", png_declaring(1_000_000, 1))
    assert_one_line_error(path, "too large")


def test_cmyk_jpeg_decodes_to_the_right_colour(tmp_path):
    red = Image.new("CMYK", (64, 64), (0, 255, 255, 0))
    rgb = load_image(write(tmp_path / "cmyk.jpg", encoded(red, "JPEG", quality=95)))
    assert rgb.shape == (64, 64, 3)
    assert np.abs(rgb[32, 32].astype(int) - [255, 0, 0]).max() < 25


def test_16_bit_png_keeps_its_range(tmp_path):
    gradient = np.tile(np.linspace(1000, 60000, 256).astype(np.uint16), (16, 1))
    image = Image.fromarray(gradient)
    rgb = load_image(write(tmp_path / "deep.png", encoded(image, "PNG")))
    assert rgb.dtype == np.uint8 and rgb.shape == (16, 256, 3)
    assert rgb[0, 0, 0] == 0 and rgb[0, -1, 0] == 255
    assert np.all(np.diff(rgb[0, :, 0].astype(int)) >= 0)


def test_palette_png_transparency_becomes_white(tmp_path):
    image = Image.new("P", (20, 10), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.paste(1, (0, 0, 10, 10))
    rgb = load_image(write(tmp_path / "p.png", encoded(image, "PNG", transparency=0)))
    assert tuple(rgb[5, 2]) == (255, 0, 0)
    assert tuple(rgb[5, 15]) == (255, 255, 255)


def test_rgba_and_la_composite_over_white(tmp_path):
    rgba = Image.new("RGBA", (8, 8), (0, 0, 255, 0))
    la = Image.new("LA", (8, 8), (0, 0))
    assert tuple(load_image(write(tmp_path / "a.png", encoded(rgba, "PNG")))[0, 0]) == (255,) * 3
    assert tuple(load_image(write(tmp_path / "b.png", encoded(la, "PNG")))[0, 0]) == (255,) * 3


@pytest.mark.parametrize("format", ["GIF", "WEBP"])
def test_animation_gives_its_first_frame(tmp_path, format):
    frames = [Image.new("RGB", (32, 32), c) for c in ((0, 0, 255), (255, 0, 0), (0, 255, 0))]
    data = encoded(frames[0], format, save_all=True, append_images=frames[1:], duration=100)
    rgb = load_image(write(tmp_path / f"anim.{format.lower()}", data))
    assert rgb[16, 16].argmax() == 2  # blue, the first frame


@pytest.mark.parametrize(("orientation", "corner"), [(6, (0, -1)), (8, (-1, 0)), (3, (-1, -1))])
def test_exif_rotation_is_applied(tmp_path, orientation, corner):
    pixels = np.zeros((40, 60, 3), np.uint8)
    pixels[:8, :8] = (255, 255, 255)  # mark the top-left corner
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = orientation
    rgb = load_image(write(tmp_path / "rot.jpg", encoded(image, "JPEG", exif=exif, quality=95)))
    assert rgb.shape[:2] == ((60, 40) if orientation in (6, 8) else (40, 60))
    row = 4 if corner[0] == 0 else rgb.shape[0] - 5
    col = 4 if corner[1] == 0 else rgb.shape[1] - 5
    assert rgb[row, col].mean() > 200


def test_directory_named_like_an_image(tmp_path):
    folder = tmp_path / "folder.jpg"
    folder.mkdir()
    assert_one_line_error(folder, "is a directory")


def test_missing_file(tmp_path):
    assert_one_line_error(tmp_path / "absent.jpg", "No such file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file(tmp_path):
    path = write(tmp_path / "locked.jpg", encoded(Image.new("RGB", (8, 8)), "JPEG"))
    path.chmod(0)
    assert_one_line_error(path, "Permission denied")


def test_broken_symlink(tmp_path):
    link = tmp_path / "gone.jpg"
    link.symlink_to(tmp_path / "nowhere.jpg")
    with pytest.raises(ImageError, match="No such file"):
        read_bytes(link)


def test_folder_listing_is_recursive_sorted_and_skips_hidden_and_other_files(tmp_path):
    (tmp_path / "b").mkdir()
    for name in ("b/2.PNG", "a.jpg", ".hidden.jpg", "notes.txt", "b/1.webp"):
        (tmp_path / name).write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in iter_image_files([tmp_path])]
    assert found == ["a.jpg", "b/1.webp", "b/2.PNG"]


def test_missing_and_unreadable_paths_are_reported_not_raised(tmp_path):
    items = list(iter_image_files([tmp_path / "absent", tmp_path / "also-absent.jpg"]))
    assert all(isinstance(i, ImageError) for i in items)
    assert "no such file or folder" in str(items[0])


@pytest.mark.skipif(os.geteuid() == 0, reason="root lists folders whatever their permissions")
def test_unreadable_folder_is_reported(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        [item] = list(iter_image_files([locked]))
        assert isinstance(item, ImageError) and "cannot read folder" in str(item)
    finally:
        locked.chmod(0o755)


def test_symlinked_folder_loop_is_not_followed(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / "loop").symlink_to(tmp_path)
    assert [p.name for p in iter_image_files([tmp_path])] == ["a.jpg"]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_give_pixels_or_an_image_error(data):
    try:
        rgb = decode_image(data, "fuzz.bin")
    except ImageError as error:
        assert "\n" not in str(error)
    else:
        assert rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.dtype == np.uint8


NOISE = np.random.default_rng(2).integers(0, 256, (30, 40, 3), dtype=np.uint8)
NOISE_PNG = encoded(Image.fromarray(NOISE), "PNG")


@settings(max_examples=80, deadline=None)
@given(st.integers(0, len(NOISE_PNG) - 1))
def test_truncated_png_is_an_error_never_a_partial_image(cut):
    """Cut anywhere, a PNG decodes to all of its pixels or to an ImageError."""
    try:
        rgb = decode_image(NOISE_PNG[:cut], "cut.png")
    except ImageError:
        return
    np.testing.assert_array_equal(rgb, NOISE)
