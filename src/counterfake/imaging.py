"""Safe decoding: every image file becomes an RGB array or one clear ImageError.

The lowest layer; it knows nothing of matching. Images come from strangers (a channel export, a
seized folder, an upload stream), so nothing in them is trusted:

- the size a file declares is checked against a pixel limit before any pixel is decoded
  (decompression bombs), with our own check, so the limit does not depend on Pillow's global
  ``Image.MAX_IMAGE_PIXELS`` (Pillow's own refusal is still caught and reported the same way);
- a truncated file is an error, never half an image (this module leaves Pillow's
  ``ImageFile.LOAD_TRUNCATED_IMAGES`` at its default, False, and relies on it);
- only the formats photos travel in are parsed (``DECODED_FORMATS``): the content decides the
  format, not the name, and Pillow's rarer plugins (EPS, PSD, ICO, ...) never see the bytes;
- every exception Pillow, a plugin or the OS can raise becomes one ``ImageError`` whose text is one
  line naming the file and the problem, so a scan reports it and goes on.

What decodes is normalised the same way every time, so one photo gives one array whatever
container it came in: EXIF orientation applied, the first frame of an animation or a multi-page
file (the primary image of a HEIF), 16-bit and float images scaled by the range their values
really span, transparency composited over white, and everything as 8-bit RGB.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import warnings
from io import BytesIO

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from counterfake.text import one_line, printable

try:  # HEIC/HEIF from phones; pillow-heif is a dependency, but decoding must not need it
    from pillow_heif import register_heif_opener
except ImportError:  # pragma: no cover - HEIF files then give a one-line error
    pass
else:
    register_heif_opener()

__all__ = [
    "DECODED_FORMATS",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PIXELS",
    "IMAGE_SUFFIXES",
    "MAX_ASPECT",
    "MAX_SIDE",
    "ImageError",
    "decode_image",
    "describe_os_error",
    "load_image",
    "read_bytes",
]

DEFAULT_MAX_PIXELS: int = 40_000_000
"""Refuse images declaring more pixels than this (decompression bombs); per call ``max_pixels``."""

DEFAULT_MAX_BYTES: int = 200_000_000
"""Refuse files larger than this before reading them into memory; per call ``max_bytes``."""

MAX_SIDE: int = 65_535
"""A side longer than this is refused whatever the pixel limit (JPEG's own maximum)."""

IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
    | {".heic", ".heif", ".avif"}
)
"""Lower-case suffixes that make a file in a folder count as an image.

HEIC and AVIF are listed even where no decoder for them is installed: a photo that cannot be
decoded should be reported as such, not silently skipped.
"""

DECODED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "HEIF", "AVIF")
"""Pillow format names tried, in this order; those whose plugin is not installed are left out."""

MAX_ASPECT: int = 100
"""A side more than this many times the other is refused: no photo is that thin, and analysis
scales the longer side to a few hundred pixels, where the shorter side of a strip would vanish
(a 700x1 PNG used to crash the resize inside signature extraction)."""

_CHUNK_PIXELS = 1 << 20  # rows are rescaled in blocks of about this many pixels (bounded memory)
_MAX_PROBLEM = 240  # characters of a third-party message kept in a problem text


class ImageError(Exception):
    """Any reason a file gives no image.

    ``path`` names the file as it was given, ``problem`` says what is wrong in plain words, and
    ``str(error)`` is ``f"{path}: {problem}"`` on one line, so a scan can print it or store it as
    a result without a traceback. (Control characters in a file name are shown escaped, so even a
    name with a newline in it keeps the message on one line.) Errors pickle, so they can cross
    from a worker process.
    """

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        self.path = _path_text(path)
        self.problem = one_line(problem)
        super().__init__(self.path, self.problem)

    def __str__(self) -> str:
        return f"{printable(self.path)}: {self.problem}"


# --------------------------------------------------------------------------------------- reading


def read_bytes(path: str | os.PathLike, *, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """A file's bytes, or an ImageError: missing, unreadable, a folder, not a file, too big, empty.

    The file is opened before it is examined (no race between a check and the read), without
    blocking (a FIFO named ``x.jpg`` must not hang a scan), and never read past ``max_bytes``.
    """
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise ValueError(f"max_bytes must be a positive integer, not {max_bytes!r}")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as error:
        raise ImageError(path, describe_os_error(error, path, opening_file=True)) from None
    except ValueError as error:  # an embedded NUL character
        raise ImageError(path, f"invalid path ({error})") from None
    try:
        with open(fd, "rb", closefd=True) as file:
            info = os.fstat(file.fileno())
            if stat.S_ISDIR(info.st_mode):
                raise ImageError(path, "is a directory")
            if not stat.S_ISREG(info.st_mode):
                raise ImageError(path, "not a regular file")
            if info.st_size > max_bytes:
                raise ImageError(path, _too_many_bytes(info.st_size, max_bytes))
            data = file.read(max_bytes + 1)  # the size on disk may change while we read
    except OSError as error:
        raise ImageError(path, describe_os_error(error, path)) from None
    if len(data) > max_bytes:
        raise ImageError(path, _too_many_bytes(len(data), max_bytes))
    if not data:
        raise ImageError(path, "empty file")
    return data


def load_image(
    path: str | os.PathLike,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> np.ndarray:
    """Read and decode a file to an HxWx3 uint8 RGB array; any problem is an ImageError.

    See ``read_bytes`` and ``decode_image``; errors name the file as ``path`` was given.
    """
    return decode_image(read_bytes(path, max_bytes=max_bytes), path, max_pixels=max_pixels)


# -------------------------------------------------------------------------------------- decoding


def decode_image(
    data: bytes | bytearray | memoryview,
    name: str | os.PathLike,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Decode image bytes to a C-contiguous, writable HxWx3 uint8 RGB array.

    ``name`` is only used in error messages (the file the bytes came from). The declared size is
    checked against ``max_pixels``, ``MAX_SIDE`` and ``MAX_ASPECT`` before any pixel is decoded;
    then the whole first frame is decoded (so truncation is found), EXIF orientation applied and
    the mode normalised (see the module docstring). Every failure is an ImageError; only a bad
    ``max_pixels`` argument (a programming error) raises ValueError.
    """
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
        raise ValueError(f"max_pixels must be a positive integer, not {max_pixels!r}")
    if not isinstance(data, bytes):
        data = bytes(data)  # a bytearray or memoryview from an upload
    if not data:
        raise ImageError(name, "empty file")
    try:
        # Pillow warns about large images, corrupt EXIF, odd chunks...; the checks here decide,
        # and a scan of a million files must not spray warnings. (Correctness does not depend on
        # the warnings filters, which Python < 3.14 shares between threads.)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(BytesIO(data), formats=_decoded_formats()) as image:
                _check_size(image.size, max_pixels, name)
                # No seek(0): after open, Pillow stands on the first frame of an animation or a
                # multi-page TIFF, and pillow-heif on the primary image (not always image 0).
                image.load()
                _check_size(image.size, max_pixels, name)  # a GIF frame may enlarge the canvas
                return _to_rgb(_upright(image))
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(name, _unrecognised(data)) from None
    except Image.DecompressionBombError as error:
        raise ImageError(name, _pillow_bomb(str(error), max_pixels)) from None
    except MemoryError:
        raise ImageError(name, "not enough memory to decode this image") from None
    except Exception as error:  # any decoder, plugin or OS failure is a property of this file
        raise ImageError(name, _decode_problem(error)) from None


def _decoded_formats() -> tuple[str, ...]:
    """``DECODED_FORMATS`` that Pillow can open here (an unknown name would make it raise)."""
    Image.init()  # loads Pillow's plugins once; afterwards a dictionary lookup
    return tuple(name for name in DECODED_FORMATS if name in Image.OPEN)


def _check_size(size: tuple[int, int], max_pixels: int, name: str | os.PathLike) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise ImageError(name, f"image has no pixels ({width}x{height})")
    if max(width, height) > MAX_SIDE:
        raise ImageError(
            name, f"dimensions {width}x{height} are too large (a side over {MAX_SIDE} pixels)"
        )
    if width * height > max_pixels:
        raise ImageError(
            name, f"{width * height} pixels is over the limit of {max_pixels} (decompression bomb?)"
        )
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise ImageError(name, f"image too thin to analyse: {width}x{height}")


def _upright(image: Image.Image) -> Image.Image:
    """The image turned as its EXIF orientation says; broken EXIF is ignored, as browsers do.

    A photo with a corrupt metadata block is still a photo: refusing it would let anyone hide a
    fake from a scan by damaging its EXIF. (HEIF and AVIF carry their rotation in the container;
    their plugins apply it and reset the EXIF tag, so nothing is turned twice.)
    """
    try:
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
        if orientation not in range(2, 9):
            return image  # exif_transpose would copy the pixels for nothing
        return ImageOps.exif_transpose(image)
    except Exception:
        return image


def _to_rgb(image: Image.Image) -> np.ndarray:
    """Any Pillow mode as a writable, C-contiguous HxWx3 uint8 RGB array.

    - 16-bit, 32-bit and float greyscale (I;16*, I, F) are scaled by the range their values really
      span: Pillow's own conversion to 8 bits clips everything above 255 to white.
    - Alpha, a palette or colour key with transparency: composited over white, so a transparent
      region is the same pixels whatever colour the file happened to store under it.
    - CMYK (including Adobe's inverted CMYK JPEGs, which Pillow un-inverts), YCbCr, LAB, 1-bit,
      L, P: Pillow's conversion to RGB. Embedded ICC profiles are not applied: the tools that
      make fakes mostly ignore them too, so the raw numbers are what a derivative shares with
      its source.
    """
    mode = image.mode
    if mode == "F" or mode == "I" or mode.startswith("I;"):
        grey = _scaled_to_8_bits(np.asarray(image), sixteen_bit=mode.startswith("I;16"))
        rgb = np.empty((*grey.shape, 3), np.uint8)
        rgb[...] = grey[:, :, None]
        return rgb
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode == "P" and image.palette is not None and image.palette.mode == "RGBA"
    )
    if has_alpha or (image.info.get("transparency") is not None and mode in ("1", "L", "P", "RGB")):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        image = flat
    elif mode != "RGB":
        image = image.convert("RGB")
    return np.array(image, dtype=np.uint8, order="C")  # a copy: Pillow's view is read-only


def _scaled_to_8_bits(values: np.ndarray, *, sixteen_bit: bool) -> np.ndarray:
    """Map the finite values' span [low, high] onto [0, 255]; NaN and -inf -> 0, +inf -> 255.

    A uniform image has no span: a 16-bit one keeps its brightness (v / 257), others are clipped.
    Worked on blocks of rows so a 40-megapixel float image does not need gigabytes.
    """
    height, width = values.shape
    rows = max(1, _CHUNK_PIXELS // max(1, width))
    low, high = np.inf, -np.inf
    for start in range(0, height, rows):
        block = values[start : start + rows]
        if block.dtype.kind == "f":
            block = block[np.isfinite(block)]
        if block.size:
            low = min(low, float(block.min()))
            high = max(high, float(block.max()))
    out = np.empty((height, width), np.uint8)
    for start in range(0, height, rows):
        block = values[start : start + rows].astype(np.float64)
        if high > low:
            block = (block - low) * (255.0 / (high - low))
        elif sixteen_bit:
            block = block / 257.0
        np.nan_to_num(block, copy=False, nan=0.0, posinf=255.0, neginf=0.0)
        out[start : start + rows] = np.rint(np.clip(block, 0.0, 255.0))
    return out


# ----------------------------------------------------------------------------- error messages


_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1"}
_AVIF_BRANDS = {b"avif", b"avis"}


def _sniff(data: bytes) -> str | None:
    """The format that the first bytes announce, for messages only (Pillow decides decoding)."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "WEBP"
    if data.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
        return "TIFF"
    if data[4:8] == b"ftyp":
        if data[8:12] in _AVIF_BRANDS:
            return "AVIF"
        if data[8:12] in _HEIF_BRANDS:
            return "HEIF"
    return None


def _unrecognised(data: bytes) -> str:
    """Tell a damaged header, or a format whose decoder is missing, from bytes that are no image."""
    announced = _sniff(data)
    if announced is None:
        return "not a recognised image format"
    if announced not in _decoded_formats():
        return f"not a recognised image format ({announced} support is not installed)"
    return f"unreadable {announced} file (damaged, truncated or an unsupported variant)"


def _pillow_bomb(message: str, max_pixels: int) -> str:
    """Pillow's own decompression-bomb refusal, said the way our check says it."""
    pixels = re.search(r"\((\d+) pixels\)", message)
    limit = re.search(r"limit of (\d+)", message)
    if pixels is None:
        return f"over the pixel limit (decompression bomb?): {message}"
    count = int(pixels.group(1))
    if count > max_pixels:
        return f"{count} pixels is over the limit of {max_pixels} (decompression bomb?)"
    pillow = limit.group(1) if limit else "?"
    return f"{count} pixels is over Pillow's limit of {pillow} (decompression bomb?)"


def _decode_problem(error: Exception) -> str:
    """A decoder's failure in plain words; Pillow's own text is kept where it says more."""
    text = one_line(str(error))[:_MAX_PROBLEM]
    if "truncated" in text.lower() or isinstance(error, EOFError):
        return "truncated file (the image data ends early)"
    if not text:
        return f"corrupt image data ({type(error).__name__})"
    if isinstance(error, OSError | SyntaxError | ValueError | RuntimeError):
        return f"corrupt image data ({text})"
    return f"corrupt image data ({type(error).__name__}: {text})"  # a decoder bug met bad bytes


def _too_many_bytes(size: int, max_bytes: int) -> str:
    return f"{size} bytes is over the file size limit of {max_bytes}"


def describe_os_error(
    error: OSError, path: str | os.PathLike, *, opening_file: bool = False
) -> str:
    """An OS error on ``path``, in plain words (shared with sources/, which lists folders)."""
    code = error.errno
    if code == errno.ENOENT:
        return "broken symbolic link" if os.path.islink(path) else "no such file"
    if code == errno.EISDIR or (opening_file and code == errno.EACCES and os.path.isdir(path)):
        return "is a directory"  # Windows refuses to open a folder with EACCES
    if code in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if code == errno.ENOTDIR:
        return "no such file (a part of the path is not a folder)"
    if code == errno.ELOOP:
        return "too many levels of symbolic links"
    return f"cannot read: {error.strerror or error}"


def _path_text(path: str | os.PathLike | bytes) -> str:
    path = os.fspath(path)
    return os.fsdecode(path) if isinstance(path, bytes) else path
