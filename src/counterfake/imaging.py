"""Safe decoding: every image file becomes an RGB array or one clear ImageError.

(Interim version written by the lead; the imaging helper's fuller module replaces it.)
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 40_000_000
MAX_BYTES = 200 * 1024 * 1024
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic", ".heif"}
)


class ImageError(Exception):
    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):
        return (ImageError, (self.path, self.problem))


def read_bytes(path: str | os.PathLike) -> bytes:
    try:
        if os.path.getsize(path) > MAX_BYTES:
            raise ImageError(path, f"file is larger than {MAX_BYTES} bytes")
        data = Path(path).read_bytes()
    except IsADirectoryError:
        raise ImageError(path, "is a directory") from None
    except OSError as error:
        raise ImageError(path, error.strerror or str(error)) from None
    if not data:
        raise ImageError(path, "empty file")
    return data


def load_image(path: str | os.PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    return decode_image(read_bytes(path), str(path), max_pixels=max_pixels)


def decode_image(data: bytes, name: str, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    if not data:
        raise ImageError(name, "empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise ImageError(
                    name,
                    f"{width * height} pixels is over the limit of {max_pixels} "
                    "(decompression bomb?)",
                )
            image.seek(0)
            image.load()
            image = ImageOps.exif_transpose(image)
            return np.ascontiguousarray(_to_rgb(image))
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(name, "not a recognised image format") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(
            name, f"over the limit of {max_pixels} pixels (decompression bomb?)"
        ) from None
    except Exception as error:
        raise ImageError(
            name,
            f"cannot decode: {str(error).splitlines()[0] if str(error) else type(error).__name__}",
        ) from None


def _to_rgb(image: Image.Image) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, np.float64)
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) * (255.0 / (high - low)) if high > low else values * 0
        return np.repeat(scaled.astype(np.uint8)[:, :, None], 3, axis=2)
    if (image.mode == "P" and "transparency" in image.info) or image.mode in ("LA", "RGBA", "PA"):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    return np.asarray(image.convert("RGB"))


def iter_image_files(paths: Iterable[str | os.PathLike]) -> Iterator[Path | ImageError]:
    for given in paths:
        path = Path(given)
        if path.is_dir():
            yield from _walk(path)
        elif path.exists() or path.is_symlink():
            yield path
        else:
            yield ImageError(path, "no such file or folder")


def _walk(folder: Path) -> Iterator[Path | ImageError]:
    try:
        entries = sorted(folder.iterdir())
    except OSError as error:
        yield ImageError(folder, f"cannot read folder: {error.strerror or error}")
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir() and not entry.is_symlink():
            yield from _walk(entry)
        elif entry.suffix.lower() in IMAGE_SUFFIXES:
            yield entry
