"""Safe decoding: every kind of bad or unusual file gives the right pixels or one clear line.

All inputs are generated here, in tmp_path, with Pillow and numpy.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import threading
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

from counterfake import imaging
from counterfake.imaging import (
    DEFAULT_MAX_PIXELS,
    ImageError,
    decode_image,
    load_image,
    read_bytes,
)
from counterfake.signature.extract import make_query, make_signature

ORIENTATION = 0x0112
RUNNING_AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def encoded(image: Image.Image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format, **options)
    return buffer.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def expect_error(path: Path, problem: str, **options) -> ImageError:
    """load_image refuses ``path`` with one line that names the file and contains ``problem``."""
    with pytest.raises(ImageError) as caught:
        load_image(path, **options)
    message = str(caught.value)
    assert "\n" not in message
    assert path.name in message and message.startswith(str(path))
    assert problem in message
    assert caught.value.path == str(path) and problem in caught.value.problem
    return caught.value


def png_declaring(width: int, height: int) -> bytes:
    """A few dozen bytes of PNG whose header claims ``width`` x ``height`` 1-bit pixels."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def marked_corner_image() -> Image.Image:
    """40 rows x 60 columns, black, with a white 8x8 mark in the top-left corner."""
    pixels = np.zeros((40, 60, 3), np.uint8)
    pixels[:8, :8] = 255
    return Image.fromarray(pixels)


def mark_position(rgb: np.ndarray) -> tuple[str, str]:
    """Which corner the white mark ended up in, as ("top"|"bottom", "left"|"right")."""
    rows, cols = np.nonzero(rgb.mean(axis=2) > 128)
    vertical = "top" if rows.mean() < rgb.shape[0] / 2 else "bottom"
    horizontal = "left" if cols.mean() < rgb.shape[1] / 2 else "right"
    return vertical, horizontal


# ------------------------------------------------------------------------------- bad input


def test_empty_file_is_refused(tmp_path):
    expect_error(write(tmp_path / "empty.jpg", b""), "empty file")
    with pytest.raises(ImageError, match="empty file"):
        decode_image(b"", "upload.jpg")


def test_truncated_jpeg_is_an_error_not_half_an_image(tmp_path):
    data = encoded(Image.new("RGB", (300, 200), (200, 30, 30)), "JPEG", quality=90)
    expect_error(write(tmp_path / "cut.jpg", data[: len(data) // 2]), "truncated")


def test_loading_truncated_images_stays_off():
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_random_bytes_named_jpg_are_not_a_recognised_format(tmp_path):
    noise = np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    expect_error(write(tmp_path / "noise.jpg", noise), "not a recognised image format")


def test_a_damaged_header_names_the_format_it_announces(tmp_path):
    data = bytearray(encoded(Image.new("RGB", (64, 64)), "PNG"))
    data[20] ^= 0xFF  # inside the IHDR chunk: its checksum no longer matches
    expect_error(write(tmp_path / "head.png", bytes(data)), "unreadable PNG file")


def test_a_format_outside_the_decoded_list_is_refused(tmp_path):
    icon = encoded(Image.new("RGB", (32, 32), (10, 20, 30)), "ICO")
    expect_error(write(tmp_path / "favicon.png", icon), "not a recognised image format")


def test_a_missing_decoder_is_named(tmp_path, monkeypatch):
    if "HEIF" not in Image.SAVE:
        pytest.skip("pillow-heif cannot encode HEIC here")
    data = encoded(Image.new("RGB", (32, 32), (10, 20, 30)), "HEIF")
    monkeypatch.setattr(imaging, "DECODED_FORMATS", ("JPEG", "PNG"))
    expect_error(write(tmp_path / "phone.heic", data), "HEIF support is not installed")


def test_the_content_decides_the_format_not_the_name(tmp_path):
    data = encoded(Image.new("RGB", (16, 8), (0, 0, 255)), "PNG")
    rgb = load_image(write(tmp_path / "really_a_png.jpg", data))
    assert rgb.shape == (8, 16, 3) and tuple(rgb[4, 4]) == (0, 0, 255)


# ------------------------------------------------------------------------ size limits


def test_decompression_bomb_is_refused_before_decoding(tmp_path, monkeypatch):
    decoded = []
    original_load = ImageFile.ImageFile.load
    monkeypatch.setattr(
        ImageFile.ImageFile, "load", lambda self: decoded.append(1) or original_load(self)
    )
    path = write(tmp_path / "bomb.png", png_declaring(30_000, 30_000))
    expect_error(path, f"900000000 pixels is over the limit of {DEFAULT_MAX_PIXELS}")
    assert decoded == []


def test_the_pixel_limit_does_not_rely_on_pillows_global(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    path = write(tmp_path / "bomb.png", png_declaring(30_000, 30_000))
    expect_error(path, f"over the limit of {DEFAULT_MAX_PIXELS} (decompression bomb?)")


def test_a_limit_above_pillows_warning_level_is_honoured_without_warnings(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow warns above, refuses above 2x
    path = write(tmp_path / "ok.png", encoded(Image.new("RGB", (40, 40)), "PNG"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_image(path, max_pixels=5000).shape == (40, 40, 3)
    big = write(tmp_path / "big.png", encoded(Image.new("RGB", (60, 60)), "PNG"))
    expect_error(big, "3600 pixels is over Pillow's limit of 2000", max_pixels=5000)


def test_pixel_limit_is_configurable_per_call(tmp_path):
    path = write(tmp_path / "ok.png", encoded(Image.new("RGB", (100, 100)), "PNG"))
    assert load_image(path).shape == (100, 100, 3)
    expect_error(path, "10000 pixels is over the limit of 5000", max_pixels=5000)


def test_absurd_dimensions_are_refused(tmp_path):
    expect_error(write(tmp_path / "strip.png", png_declaring(1_000_000, 1)), "too large")


@pytest.mark.parametrize(
    ("width", "height"),
    [(513, 1), (700, 1), (800, 2), (1000, 1), (1, 1000), (5000, 8), (65000, 8)],
)
def test_an_image_too_thin_to_analyse_is_one_error_naming_its_size(tmp_path, width, height):
    path = write(tmp_path / "thin.png", encoded(Image.new("RGB", (width, height)), "PNG"))
    expect_error(path, f"image too thin to analyse: {width}x{height}")


def test_the_thinnest_image_allowed_is_analysed(tmp_path):
    thinnest = imaging.MAX_ASPECT
    for size in ((thinnest, 1), (1, thinnest), (thinnest * 300, 300)):
        rgb = load_image(write(tmp_path / "strip.png", encoded(Image.new("RGB", size), "PNG")))
        make_query(rgb)
        make_signature(rgb, "strip.png", "0" * 64)


def test_a_file_over_the_byte_limit_is_not_read(tmp_path):
    path = write(tmp_path / "big.jpg", b"\xff" * 5000)
    expect_error(path, "5000 bytes is over the file size limit of 1000", max_bytes=1000)


# ------------------------------------------------------------------- modes and colours


def test_output_is_a_writable_contiguous_rgb_uint8_array(tmp_path):
    rgb = load_image(write(tmp_path / "a.png", encoded(Image.new("L", (7, 5), 9), "PNG")))
    assert rgb.shape == (5, 7, 3) and rgb.dtype == np.uint8
    assert rgb.flags.c_contiguous and rgb.flags.writeable
    assert np.all(rgb == 9)


def test_cmyk_jpeg_decodes_to_the_right_colour(tmp_path):
    red = Image.new("CMYK", (64, 64), (0, 255, 255, 0))  # Pillow writes Adobe (inverted) CMYK
    rgb = load_image(write(tmp_path / "cmyk.jpg", encoded(red, "JPEG", quality=95)))
    assert rgb.shape == (64, 64, 3)
    assert np.abs(rgb[32, 32].astype(int) - [255, 0, 0]).max() < 25


def test_16_bit_png_keeps_its_range(tmp_path):
    gradient = np.tile(np.linspace(1000, 60000, 256).astype(np.uint16), (16, 1))
    image = Image.fromarray(gradient)
    assert image.mode == "I;16"
    rgb = load_image(write(tmp_path / "deep.png", encoded(image, "PNG")))
    assert rgb.dtype == np.uint8 and rgb.shape == (16, 256, 3)
    row = rgb[0, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255  # scaled by the real range, not clipped at 255
    assert np.all(np.diff(row) >= 0) and len(np.unique(row)) > 200
    assert np.array_equal(rgb[..., 0], rgb[..., 2])


def test_float_tiff_is_scaled_and_non_finite_values_are_pinned(tmp_path):
    values = np.linspace(-1.0, 1.0, 64, dtype=np.float32).reshape(8, 8)
    values[0, 0], values[0, 1], values[0, 2] = np.nan, np.inf, -np.inf
    rgb = load_image(write(tmp_path / "f.tif", encoded(Image.fromarray(values, "F"), "TIFF")))
    grey = rgb[..., 0]
    assert (grey[0, 0], grey[0, 1], grey[0, 2]) == (0, 255, 0)
    assert grey[0, 3] < 30 and grey[7, 7] == 255


def test_palette_png_transparency_becomes_white(tmp_path):
    image = Image.new("P", (20, 10), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.paste(1, (0, 0, 10, 10))
    rgb = load_image(write(tmp_path / "p.png", encoded(image, "PNG", transparency=0)))
    assert tuple(rgb[5, 2]) == (255, 0, 0)
    assert tuple(rgb[5, 15]) == (255, 255, 255)


@pytest.mark.parametrize(
    ("mode", "colour", "expected"),
    [
        ("RGBA", (0, 0, 255, 0), (255, 255, 255)),  # transparent: white, whatever lies under it
        ("RGBA", (0, 0, 255, 255), (0, 0, 255)),
        ("RGBA", (0, 0, 0, 128), (127, 127, 127)),  # half transparent black over white
        ("LA", (0, 0), (255, 255, 255)),
        ("LA", (40, 255), (40, 40, 40)),
    ],
)
def test_alpha_is_composited_over_white(tmp_path, mode, colour, expected):
    path = write(tmp_path / "a.png", encoded(Image.new(mode, (8, 8), colour), "PNG"))
    assert tuple(load_image(path)[3, 3]) == expected


def test_one_bit_image_decodes_to_black_and_white(tmp_path):
    image = Image.new("1", (8, 8), 0)
    image.paste(1, (0, 0, 4, 8))
    rgb = load_image(write(tmp_path / "bw.png", encoded(image, "PNG")))
    assert tuple(rgb[0, 0]) == (255, 255, 255) and tuple(rgb[0, 7]) == (0, 0, 0)


@pytest.mark.parametrize(
    ("format", "suffix"), [("GIF", "gif"), ("WEBP", "webp"), ("PNG", "png"), ("TIFF", "tif")]
)
def test_animation_or_multi_page_file_gives_its_first_frame(tmp_path, format, suffix):
    frames = [Image.new("RGB", (32, 32), c) for c in ((0, 0, 255), (255, 0, 0), (0, 255, 0))]
    data = encoded(frames[0], format, save_all=True, append_images=frames[1:], duration=100)
    with Image.open(io.BytesIO(data)) as check:
        assert getattr(check, "n_frames", 1) == 3  # really animated / multi-page
    rgb = load_image(write(tmp_path / f"anim.{suffix}", data))
    assert np.abs(rgb[16, 16].astype(int) - [0, 0, 255]).max() < 10


# --------------------------------------------------------------------------- orientation


@pytest.mark.parametrize(
    ("orientation", "shape", "corner"),
    [
        (1, (40, 60), ("top", "left")),
        (3, (40, 60), ("bottom", "right")),
        (6, (60, 40), ("top", "right")),  # shown turned 90 degrees clockwise
        (8, (60, 40), ("bottom", "left")),  # shown turned 90 degrees anticlockwise
    ],
)
def test_exif_orientation_is_applied(tmp_path, orientation, shape, corner):
    image = marked_corner_image()
    exif = image.getexif()
    exif[ORIENTATION] = orientation
    data = encoded(image, "JPEG", exif=exif, quality=95)
    rgb = load_image(write(tmp_path / "turned.jpg", data))
    assert rgb.shape[:2] == shape
    assert mark_position(rgb) == corner


def test_corrupt_exif_does_not_lose_the_photo(tmp_path):
    image = marked_corner_image()
    exif = image.getexif()
    exif[ORIENTATION] = 6
    data = bytearray(encoded(image, "JPEG", exif=exif, quality=95))
    start = data.find(b"Exif\0\0") + 6
    data[start : start + 8] = b"\xff" * 8  # the TIFF header of the EXIF block: unreadable
    rgb = load_image(write(tmp_path / "bad_exif.jpg", bytes(data)))
    assert rgb.shape == (40, 60, 3) and mark_position(rgb) == ("top", "left")


@pytest.mark.parametrize("format", ["HEIF", "AVIF"])
def test_container_rotation_is_applied_once(tmp_path, format):
    if format not in Image.SAVE:
        pytest.skip(f"no {format} encoder here")
    image = marked_corner_image()
    exif = image.getexif()
    exif[ORIENTATION] = 6  # the encoder turns this into the container's rotation
    data = encoded(image, format, exif=exif.tobytes())
    rgb = load_image(write(tmp_path / f"phone.{format.lower()}", data))
    assert rgb.shape[:2] == (60, 40)
    assert mark_position(rgb) == ("top", "right")


# ------------------------------------------------------------------------- file system


def test_missing_file(tmp_path):
    expect_error(tmp_path / "absent.jpg", "no such file")


def test_directory_named_like_an_image(tmp_path):
    folder = tmp_path / "folder.jpg"
    folder.mkdir()
    expect_error(folder, "is a directory")


def test_broken_symlink(tmp_path):
    link = tmp_path / "gone.jpg"
    link.symlink_to(tmp_path / "nowhere.jpg")
    expect_error(link, "broken symbolic link")


@pytest.mark.skipif(RUNNING_AS_ROOT, reason="root reads files whatever their permissions")
def test_unreadable_file(tmp_path):
    path = write(tmp_path / "locked.jpg", encoded(Image.new("RGB", (8, 8)), "JPEG"))
    path.chmod(0)
    try:
        expect_error(path, "permission denied")
    finally:
        path.chmod(0o644)


def test_a_file_that_cannot_be_opened_is_reported(tmp_path, monkeypatch):
    """The same, by simulation, so it also runs as root."""
    path = write(tmp_path / "locked.jpg", encoded(Image.new("RGB", (8, 8)), "JPEG"))

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(os, "open", denied)
    error = expect_error(path, "permission denied")
    assert str(error) == f"{path}: permission denied"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_named_pipe_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []

    def read() -> None:
        try:
            read_bytes(fifo)
        except BaseException as error:
            outcome.append(error)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=10)
    assert not reader.is_alive(), "read_bytes blocked on a FIFO"
    [error] = outcome
    assert isinstance(error, ImageError) and "not a regular file" in str(error)


def test_a_file_name_cannot_break_the_error_line(tmp_path):
    path = write(tmp_path / "two\nlines\u202e.jpg", b"")
    with pytest.raises(ImageError) as caught:
        load_image(path)
    message = str(caught.value)
    assert "\n" not in message and "\u202e" not in message
    assert "two\\nlines\\u202e.jpg" in message
    assert caught.value.path == str(path)  # the real path stays usable


def test_image_errors_survive_pickling():
    error = ImageError("a/b.jpg", "empty file")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.path, copy.problem, str(copy)) == ("a/b.jpg", "empty file", "a/b.jpg: empty file")


# ----------------------------------------------------------------------------- properties

MAGIC = [
    b"",
    b"\xff\xd8\xff",
    b"\x89PNG\r\n\x1a\n",
    b"GIF89a",
    b"RIFF\0\0\0\0WEBP",
    b"II*\0",
    b"BM",
]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(MAGIC), st.binary(max_size=1024))
def test_arbitrary_bytes_give_pixels_or_an_image_error(magic, tail):
    try:
        rgb = decode_image(magic + tail, "fuzz.bin")
    except ImageError as error:
        assert "\n" not in str(error) and str(error).startswith("fuzz.bin: ")
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
