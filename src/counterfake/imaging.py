"""Safe decoding: every image file becomes an RGB array or one clear ImageError.

The lowest layer; it knows nothing of matching. Images come from strangers (a channel export, an
upload stream), so nothing is trusted: the size is checked against a pixel limit before any pixel
is decoded (decompression bombs), a truncated file is an error rather than half an image, and
every exception Pillow or the OS can raise becomes one ImageError whose text is one line naming
the file and the problem. What decodes is normalised the same way every time: EXIF rotation
applied, first frame of an animation, 16-bit and float images scaled by their real range,
transparency composited over white, everything as 8-bit RGB.
"""

from __future__ import annotations

import os
import warnings
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

try:  # HEIC/HEIF/AVIF from phones, when pillow-heif is installed (it is a dependency)
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:  # pragma: no cover - the decoder simply does not know the format then
    pass

ImageFile.LOAD_TRUNCATED_IMAGES = False

DEFAULT_MAX_PIXELS = 40_000_000
MAX_BYTES = 200 * 1024 * 1024
MAX_SIDE = 100_000  # a side longer than this is refused whatever the pixel limit
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jfif", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
    | {".heic", ".heif", ".avif"}
)


class ImageError(Exception):
    """Any reason a file gives no image; ``str(error)`` is ``"<path>: <problem>"`` on one line."""

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):
        return (ImageError, (self.path, self.problem))


def read_bytes(path: str | os.PathLike) -> bytes:
    """The file's bytes, or an ImageError for a missing, unreadable, oversized or empty file."""
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
    """Decode a file to an HxWx3 uint8 RGB array (see the module docstring)."""
    return decode_image(read_bytes(path), str(path), max_pixels=max_pixels)


def decode_image(data: bytes, name: str, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode bytes to an HxWx3 uint8 RGB array; ``name`` is used in error messages."""
    if not data:
        raise ImageError(name, "empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(BytesIO(data))
            width, height = image.size
            if max(width, height) > MAX_SIDE:
                raise ImageError(name, f"dimensions {width}x{height} are too large")
            if width * height > max_pixels:
                raise ImageError(
                    name,
                    f"{width * height} pixels is over the limit of {max_pixels} "
                    "(decompression bomb?)",
                )
            image.seek(0)  # the first frame of an animation or a multi-page file
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
    """Any Pillow mode as 8-bit RGB; transparent pixels become white, so results are repeatable."""
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
