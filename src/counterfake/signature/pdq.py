"""PDQ, Meta's 256-bit perceptual hash, written out step by step in numpy.

PDQ answers "is this the same picture?". It is what hash-sharing programmes (StopNCII, Meta's
ThreatExchange, Hasher-Matcher-Actioner) exchange, so counterfake keeps it in every signature and
its hashes must agree with Meta's. Matching *derivatives* is the local features' job, not PDQ's.

The algorithm follows Meta's reference (``pdq/cpp`` in facebook/ThreatExchange, and the paper
``pdqhash-2017-10-09.pdf``); this is an independent implementation of it:

0. Images larger than 512 pixels on either side are first resized to exactly 512x512 by nearest
   neighbour, as Meta's ``pdq-photo-hasher`` does (``CImg::resize(512, 512)``): the filter below is
   slow on big images, and doing the same cheap step keeps our hashes equal to Meta's.
1. Luminance: ``Y = 0.299 R + 0.587 G + 0.114 B`` (Rec. 601, Meta's coefficients), as float32.
2. Jarosz filter: a box filter run twice along each axis, which is a tent filter. Its window is
   ``ceil(side / 128)``: half the spacing of the 64 output samples, so that two passes together
   cover one full sample spacing. Near the edges the box averages only the pixels that exist.
3. Decimation: keep 64x64 samples of the blurred image, at the centres of a 64x64 grid.
4. Quality (0..100): the sum of the quantised absolute differences between neighbouring samples,
   divided by 90. Flat or featureless images score low, and their hashes are unreliable.
5. DCT: the 16x16 lowest frequencies (1..16 in each direction; frequency 0, the mean brightness,
   is left out) of the 64x64 samples' DCT-II, as ``D @ samples @ D.T`` with a 16x64 DCT matrix.
6. Bits: each of the 256 coefficients gives one bit, set when it is above their median.

Steps 2 and 3 are linear and separable, so for each image side they are one fixed 64 x side matrix
(built once by running the box filter on the identity, then cached): the whole blur-and-decimate
is two matrix products. That is what makes the hash cost a couple of milliseconds.

The eight dihedral hashes (the image rotated and flipped) come from the same DCT coefficients
without touching the image again: flipping an image along an axis multiplies each coefficient by
``(-1) ** frequency`` along that axis, and transposing the image transposes the coefficients.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, lru_cache

import numpy as np
from threadpoolctl import ThreadpoolController

HASH_BITS = 256
MATCH_THRESHOLD = 31  # Meta's recommended Hamming distance: at most this far apart is a match
MIN_QUALITY = 50  # Meta recommends discarding hashes of quality 49 or less

# The orientations in Meta's order (C++ Original, Rotate90, ..., FlipMinus1). Rotations are
# counter-clockwise; flipX swaps top and bottom, flipY swaps left and right (the mirror image);
# flipPlus1 is the transpose (upper left stays), flipMinus1 the anti-transpose (upper right stays).
DIHEDRAL_ORIENTATIONS = (
    "original",
    "rotate90",
    "rotate180",
    "rotate270",
    "flipX",
    "flipY",
    "flipPlus1",
    "flipMinus1",
)
# The short names Meta's pdq-photo-hasher prints as ``xform=`` with ``--pdqdih``.
PDQ_PHOTO_HASHER_NAMES = dict(
    zip(
        ("orig", "rot90", "rot180", "rot270", "flipx", "flipy", "flipp", "flipm"),
        DIHEDRAL_ORIENTATIONS,
        strict=True,
    )
)

_HASH_BYTES = HASH_BITS // 8
_DOWNSAMPLE_SIDE = 512  # Meta's DOWNSAMPLE_DIMS
_MIN_HASHABLE_SIDE = 5  # smaller images get the all-zero hash with quality 0, as in Meta's code
_SAMPLES = 64  # the blurred image is reduced to 64x64
_FREQUENCIES = 16  # ...and 16x16 of its DCT coefficients are kept
_JAROSZ_PASSES = 2  # two box passes per axis make a tent filter
_LUMA_R, _LUMA_G, _LUMA_B = np.float32(0.299), np.float32(0.587), np.float32(0.114)


@dataclass(frozen=True)
class PdqHash:
    """A PDQ hash: 256 bits and the quality of the image they came from.

    ``bits`` holds bit ``k`` (0..255) in byte ``k // 8``, least significant bit first. Bit
    ``16 * i + j`` is DCT coefficient row ``i``, column ``j``, exactly as in Meta's ``Hash256``,
    so ``int(h.hex(), 16) >> k & 1`` is bit ``k``.
    """

    bits: bytes  # 32 bytes
    quality: int  # 0..100

    def __post_init__(self) -> None:
        if not isinstance(self.bits, bytes) or len(self.bits) != _HASH_BYTES:
            raise ValueError(f"a PDQ hash holds {_HASH_BYTES} bytes, not {self.bits!r:.80}")
        if isinstance(self.quality, bool) or not isinstance(self.quality, int | np.integer):
            raise ValueError(f"PDQ quality must be an integer, not {self.quality!r:.40}")
        if not 0 <= self.quality <= 100:
            raise ValueError(f"PDQ quality must be 0..100, not {self.quality}")

    def hex(self) -> str:
        """Meta's text form: 16-bit words 15 down to 0, four lowercase hex digits each.

        This is the form every PDQ tool and hash-exchange file reads and writes, and it is the
        256-bit number whose bit ``k`` is bit ``k`` of the hash.
        """
        return int.from_bytes(self.bits, "little").to_bytes(_HASH_BYTES, "big").hex()

    @classmethod
    def from_hex(cls, text: str, quality: int = 100) -> PdqHash:
        """Read Meta's 64-hex-digit text form (upper or lower case); ``ValueError`` if it is not.

        Hashes arrive from other programmes and from files, so the text is checked strictly
        rather than guessed at: a wrong length or a stray character is an error.
        """
        if not isinstance(text, str):
            raise ValueError(f"a PDQ hash is 64 hexadecimal digits, not {type(text).__name__}")
        text = text.strip()
        if len(text) != 2 * _HASH_BYTES or any(c not in "0123456789abcdefABCDEF" for c in text):
            raise ValueError(f"a PDQ hash is 64 hexadecimal digits, not {text[:80]!r}")
        return cls(int(text, 16).to_bytes(_HASH_BYTES, "little"), quality)


def hamming_distance(a: bytes, b: bytes) -> int:
    """The number of bits in which two hashes differ: PDQ's distance (0..256)."""
    if len(a) != len(b):
        raise ValueError(f"hashes of different lengths ({len(a)} and {len(b)} bytes)")
    return (int.from_bytes(a, "little") ^ int.from_bytes(b, "little")).bit_count()


# ---------------------------------------------------------------- steps 0 and 1: luminance


def _check_image(image: np.ndarray) -> None:
    """Reject anything that is not an 8-bit RGB (or greyscale) image, with a clear message."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ValueError("PDQ takes an 8-bit image: a numpy uint8 array")
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f"PDQ takes an HxWx3 RGB or HxW grey image, not shape {image.shape}")


def _downsample_if_large(image: np.ndarray) -> np.ndarray:
    """Step 0: over 512 pixels on either side, nearest-neighbour resize to exactly 512x512.

    Output pixel ``d`` takes input pixel ``floor(d * n / 512)`` along each axis, as CImg's
    default resize does. The aspect ratio is not kept, and it does not matter: the image is
    reduced to 64x64 samples anyway.
    """
    height, width = image.shape[:2]
    if height <= _DOWNSAMPLE_SIDE and width <= _DOWNSAMPLE_SIDE:
        return image
    rows = np.arange(_DOWNSAMPLE_SIDE) * height // _DOWNSAMPLE_SIDE
    cols = np.arange(_DOWNSAMPLE_SIDE) * width // _DOWNSAMPLE_SIDE
    return image.take(rows, axis=0).take(cols, axis=1)  # much faster than image[rows, cols]


def _luminance(image: np.ndarray) -> np.ndarray:
    """Step 1: Y = 0.299 R + 0.587 G + 0.114 B in float32; a grey image is its own luminance."""
    if image.ndim == 2:
        return image.astype(np.float32)
    rgb = image.astype(np.float32)
    return _LUMA_R * rgb[:, :, 0] + _LUMA_G * rgb[:, :, 1] + _LUMA_B * rgb[:, :, 2]


# ---------------------------------------------------------------- steps 2 and 3: blur, decimate


def _jarosz_window(old_side: int, new_side: int) -> int:
    """Meta's box window: ``old / (2 * new)`` rounded up, half of one output sample's spacing.

    Two passes of a box of that width add up to a tent one sample spacing wide, so every input
    pixel contributes to the samples around it.
    """
    return (old_side + 2 * new_side - 1) // (2 * new_side)


def _box_filter_matrix(side: int, window: int) -> np.ndarray:
    """One box-filter pass along a line of ``side`` pixels, as a side x side matrix.

    Output pixel ``i`` is the mean of input pixels ``i - (window - 1) // 2`` to
    ``i + window // 2`` (an even window reaches one pixel further forward, as in Meta's code);
    near the ends, the mean of those of them that exist.
    """
    behind, ahead = (window - 1) // 2, window // 2
    output = np.arange(side)[:, None]
    source = np.arange(side)[None, :]
    inside = (source >= output - behind) & (source <= output + ahead)
    return inside / inside.sum(axis=1, keepdims=True)


@lru_cache(maxsize=128)
def _blur_and_decimate(side: int) -> np.ndarray:
    """Steps 2 and 3 along one axis of ``side`` pixels, as a 64 x side matrix.

    The Jarosz filter (``_JAROSZ_PASSES`` box passes) followed by decimation is linear: it is
    ``box @ box`` with only the 64 sampled rows kept, sample ``k`` being input pixel
    ``floor((k + 0.5) * side / 64)``, the centre of its cell. An image's luminance is then
    reduced with ``rows_matrix @ luma @ cols_matrix.T``, which blurs along both axes twice and
    samples, like Meta's code, in two matrix products.
    """
    box = _box_filter_matrix(side, _jarosz_window(side, _SAMPLES))
    centres = ((np.arange(_SAMPLES) + 0.5) * side / _SAMPLES).astype(int)
    matrix = box[centres]  # the sampled rows of the last pass...
    for _ in range(_JAROSZ_PASSES - 1):
        matrix = matrix @ box  # ...applied after the passes before it
    matrix = matrix.astype(np.float32)
    matrix.flags.writeable = False  # shared by every call through the cache
    return matrix


@cache
def _threadpools() -> ThreadpoolController:
    return ThreadpoolController()


def _samples_64x64(luma: np.ndarray) -> np.ndarray:
    """Steps 2 and 3: the Jarosz-blurred luminance sampled on a 64x64 grid.

    The two products run on the calling thread alone: OpenBLAS otherwise spreads products this
    small over every core, and its threads' waiting cost 38 ms of CPU time a photo instead of
    2.3 on a busy 2-core machine (one-off measurement; bench/speed.py's extraction rows).
    """
    height, width = luma.shape
    rows, cols = _blur_and_decimate(height), _blur_and_decimate(width)
    with _threadpools().limit(limits=1, user_api="blas"):
        return (rows @ luma @ cols.T).astype(np.float64)


# ---------------------------------------------------------------- step 4: quality


def _quality(samples: np.ndarray) -> int:
    """Step 4: how much structure the 64x64 samples hold, 0..100.

    Each difference between vertically or horizontally neighbouring samples is scaled to
    percent of full range and truncated toward zero (so only significant gradients count, not
    the sum of many tiny ones); the sum over all neighbours, divided by 90, is capped at 100.
    """
    vertical = np.trunc(np.diff(samples, axis=0) * 100 / 255)
    horizontal = np.trunc(np.diff(samples, axis=1) * 100 / 255)
    gradient_sum = int(np.abs(vertical).sum() + np.abs(horizontal).sum())
    return min(100, gradient_sum // 90)


# ---------------------------------------------------------------- steps 5 and 6: DCT, bits


def _dct_matrix() -> np.ndarray:
    """Rows 1..16 of the 64-point DCT-II basis: ``sqrt(2/64) * cos(pi/128 * k * (2n + 1))``."""
    frequency = np.arange(1, _FREQUENCIES + 1)[:, None]
    position = np.arange(_SAMPLES)[None, :]
    return np.sqrt(2 / _SAMPLES) * np.cos(np.pi / (2 * _SAMPLES) * frequency * (2 * position + 1))


_DCT = _dct_matrix()


def _dct_16x16(samples: np.ndarray) -> np.ndarray:
    """Step 5: the 16x16 low-frequency DCT coefficients; row ``i`` is vertical frequency i+1."""
    return _DCT @ samples @ _DCT.T


def _bits(coefficients: np.ndarray) -> bytes:
    """Step 6: one bit per coefficient, set when it is above the median of the 256.

    The median is the 128th smallest value (the lower median, as Meta's Torben routine
    returns), so exactly 128 bits are set whenever the coefficients are distinct.
    """
    flat = coefficients.ravel()
    median = np.partition(flat, HASH_BITS // 2 - 1)[HASH_BITS // 2 - 1]
    return np.packbits(flat > median, bitorder="little").tobytes()


# ---------------------------------------------------------------- the dihedral transforms

# Flipping the image along an axis multiplies the coefficient of frequency k along that axis by
# (-1) ** k. Coefficient index i holds frequency i + 1, so the sign is -1 at even indices.
_FLIP_SIGN = np.where(np.arange(_FREQUENCIES) % 2 == 0, -1.0, 1.0)

# Each orientation as (flip rows: top and bottom swap, flip columns: left and right swap,
# then transpose). E.g. rotating 90 degrees counter-clockwise mirrors left-right, then transposes.
_DIHEDRAL_STEPS = {
    "original": (False, False, False),
    "rotate90": (False, True, True),
    "rotate180": (True, True, False),
    "rotate270": (True, False, True),
    "flipX": (True, False, False),
    "flipY": (False, True, False),
    "flipPlus1": (False, False, True),
    "flipMinus1": (True, True, True),
}


def _dihedral_coefficients(coefficients: np.ndarray, orientation: str) -> np.ndarray:
    """The DCT coefficients the image would have in the given orientation."""
    flip_rows, flip_cols, transpose = _DIHEDRAL_STEPS[orientation]
    result = coefficients
    if flip_rows:
        result = result * _FLIP_SIGN[:, None]
    if flip_cols:
        result = result * _FLIP_SIGN[None, :]
    return result.T if transpose else result


# ---------------------------------------------------------------- the public functions


def _coefficients_and_quality(
    image: np.ndarray, downsample: bool = True
) -> tuple[np.ndarray | None, int]:
    """Steps 0 (unless ``downsample`` is False) to 5; ``None`` for an image too small to hash
    (Meta's minimum side is 5)."""
    _check_image(image)
    if min(image.shape[:2]) < _MIN_HASHABLE_SIDE:
        return None, 0
    if downsample:
        image = _downsample_if_large(image)
    samples = _samples_64x64(_luminance(image))
    return _dct_16x16(samples), _quality(samples)


def pdq_hash(rgb: np.ndarray, *, downsample: bool = True) -> PdqHash:
    """The PDQ hash of an image: HxWx3 uint8 RGB (or HxW uint8 grey).

    ``downsample=False`` leaves out step 0 and filters the full image, as Meta's vPDQ does
    with each video frame (its frames never pass through ``pdq-photo-hasher``'s resize).

    Pass the pixels as decoded, without EXIF rotation if the hash must equal Meta's tools
    (they ignore EXIF orientation). Images under 5 pixels on a side get the all-zero hash with
    quality 0, as in Meta's code. Raises ``ValueError`` for anything that is not such an array.
    """
    coefficients, quality = _coefficients_and_quality(rgb, downsample)
    if coefficients is None:
        return PdqHash(bytes(_HASH_BYTES), 0)
    return PdqHash(_bits(coefficients), quality)


def pdq_dihedral_hashes(rgb: np.ndarray) -> dict[str, PdqHash]:
    """The hashes of the image in its eight rotations and flips, in Meta's order and names.

    A registry that keeps all eight recognises a rotated or mirrored repost by comparing the
    repost's one hash with them. ``"original"`` equals :func:`pdq_hash`; the others are what
    hashing the rotated or flipped pixels would give, up to a few bits. All share one quality.
    """
    coefficients, quality = _coefficients_and_quality(rgb)
    if coefficients is None:
        return {name: PdqHash(bytes(_HASH_BYTES), 0) for name in DIHEDRAL_ORIENTATIONS}
    return {
        name: PdqHash(_bits(_dihedral_coefficients(coefficients, name)), quality)
        for name in DIHEDRAL_ORIENTATIONS
    }
