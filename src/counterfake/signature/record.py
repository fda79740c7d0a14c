"""The stored form of a signature: one compact binary record of at most RECORD_BUDGET bytes.

Verification reads a registered photo's record for every candidate, so at ten million photos a
machine keeps the records on disk (each one indexed registry row) and they must be small: issue
18 asks for 16 kB a photo. At 16,000 bytes a record keeps about 287 of a photo's 512 features,
and 0.2 to 2.1 points fewer derivatives were found on four of the five benchmark sources
(docs/index.md); so the budget keeps all 512, in about 24 kB (61 kB before: the mirror image's
features and float fields). The record holds what verification and the exchange read, and
nothing else:

- the photo's size, its reference frame's size, its PDQ hashes (all eight orientations) and the
  box of its face;
- its local features, in spread order (a prefix is itself spread over the photo), as many as
  fit the budget after the rest: the 32-byte descriptor and a 32-bit keypoint word (position in
  1/8 pixel, 12 bits a coordinate; orientation in 1/32 turn, 5 bits; pyramid level, 3 bits;
  ORB's keypoint size follows from the level as OpenCV computes it). Verification reads
  positions only, and its tolerances are pixels (``Thresholds.ransac_pixels`` 3,
  ``max_median_residual`` 1.6): a rounding of at most 1/16 pixel is far below them. The compact
  index (index/compact.py) bins orientations in sixteenths of a turn, which 1/32 turns
  reproduce exactly;
- the coarse grid, losslessly compressed: each channel's plane less the row above it, then
  LZMA (neighbouring cells are alike: 9,216 bytes become about 5,400 on people photos, against
  6,100 with zlib; decoding one took about 0.12 ms against zlib's 0.03, on a loaded machine,
  beside about 4 ms a verification).

The mirror image's features are not part of the stored form: a mirrored copy is found with the
*scanned* image's mirror image (``Query.mirror_features``). A scanned image's signature, made to
be matched rather than registered (``counterfake hash --mirror``), keeps them and all its own
features, outside the budget: it is not stored, and registering it keeps what fits.

Layout (little-endian): the header ``_HEAD``, the PDQ hashes (orientation number and 32 bytes
each), the face box (four int16, when present), the features (their keypoint words, then their
descriptors), the mirror image's features likewise (when present),
the compressed grid. Every length is checked on reading; a record that does not add up is a
ValueError, never a misread.
"""

from __future__ import annotations

import lzma
import struct

import numpy as np

from counterfake.imaging import MAX_SIDE
from counterfake.signature.extract import Signature
from counterfake.signature.features import DESCRIPTOR_BYTES, LocalFeatures, orb_size
from counterfake.signature.grid import GRID_CHANNELS, GRID_COLS, GRID_ROWS
from counterfake.signature.pdq import DIHEDRAL_ORIENTATIONS, PdqHash

# bytes of a stored record: a photo's 512 features (36 bytes each) beside a grid that LZMA
# could not shrink (9,216 bytes) and the rest; docs/index.md measures 16,000, which cuts features
RECORD_BUDGET = 28_000
MAGIC = b"CFR1"  # an old signature blob begins with the .cfsig magic instead
MAX_FEATURES = 4096  # per orientation: a record claiming more is damaged
XY_STEPS = 8  # per pixel: 12 bits a coordinate hold the reference frame's 512 pixels
MAX_FRAME = 4096 // XY_STEPS  # pixels of a reference frame's longer side (REFERENCE_SIDE)
ANGLE_STEPS = 32  # per turn: 5 bits...
LEVELS = 8  # ...beside 3 bits of pyramid level (OrbSettings().levels)
FEATURE_BYTES = 4 + DESCRIPTOR_BYTES  # a keypoint's 32-bit word, then its descriptor
_GRID_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 9, "dict_size": 1 << 12}]
GRID_BYTES = GRID_ROWS * GRID_COLS * GRID_CHANNELS
_HEAD = struct.Struct("<4sIIHHBBBHHH")  # magic, size, frame, quality, hashes, flags, counts, grid
_FACE = struct.Struct("<4h")
_HAS_FACE, _HAS_MIRROR = 1, 2
_PDQ_BYTES = 1 + 32


def encode(signature: Signature, *, scanned: bool = False) -> bytes:
    """The record of a signature: its features cut to what fits RECORD_BUDGET. With
    ``scanned`` (a signature to be matched, never stored) all its features and its mirror
    image's, whatever their size. ValueError if it cannot be encoded."""
    check_storable(signature)
    grid = _pack_grid(signature.grid)
    face = signature.face
    fixed = _HEAD.size + _PDQ_BYTES * len(signature.pdq) + _FACE.size * bool(len(face)) + len(grid)
    count = min(len(signature.features), max(0, (RECORD_BUDGET - fixed) // FEATURE_BYTES))
    sides = [signature.features.head(len(signature.features) if scanned else count)]
    if scanned and len(signature.mirrored):
        sides.append(signature.mirrored)
    flags = _HAS_FACE * bool(len(face)) | _HAS_MIRROR * (len(sides) == 2)
    parts = [
        _HEAD.pack(
            MAGIC,
            signature.width,
            signature.height,
            signature.frame_width,
            signature.frame_height,
            signature.pdq["original"].quality,
            len(signature.pdq),
            flags,
            len(sides[0]),
            len(sides[-1]) if len(sides) == 2 else 0,
            len(grid),
        )
    ]
    parts += [
        bytes([DIHEDRAL_ORIENTATIONS.index(name)]) + pdq.bits for name, pdq in signature.pdq.items()
    ]
    if len(face):
        parts.append(_FACE.pack(*(int(v) for v in face)))
    parts += [_pack_features(side) for side in sides]
    parts.append(grid)
    return b"".join(parts)


def check_storable(signature: Signature) -> None:
    """ValueError naming what keeps a signature from being stored as a record."""
    if min(signature.frame_width, signature.frame_height) < 1:
        raise ValueError("a frame's size must be positive")
    if max(signature.frame_width, signature.frame_height) > MAX_FRAME:
        raise ValueError(f"a frame over {MAX_FRAME} pixels cannot be stored")
    if (
        not 1
        <= min(signature.width, signature.height)
        <= max(signature.width, signature.height)
        <= MAX_SIDE
    ):
        raise ValueError("a photo's size is out of range")
    if "original" not in signature.pdq:
        raise ValueError("a stored signature needs its PDQ hash")
    if signature.grid.shape != (GRID_ROWS, GRID_COLS, GRID_CHANNELS):
        raise ValueError("the grid has the wrong shape")


def decode(data: bytes, label: str = "", sha256: str = "") -> Signature:
    """Read a record back as the signature of ``label`` and ``sha256`` (the registry row and
    the .cfsig entry hold them beside it); ValueError naming the problem if it is not a whole,
    sound one."""
    if len(data) < _HEAD.size or not data.startswith(MAGIC):
        raise ValueError("not a counterfake signature record")
    _, width, height, frame_width, frame_height, quality, hashes, flags, count, mirrored, grid = (
        _HEAD.unpack_from(data)
    )
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise ValueError("size out of range")
    if not (1 <= frame_width <= MAX_FRAME and 1 <= frame_height <= MAX_FRAME):
        raise ValueError("frame out of range")
    if count > MAX_FEATURES or mirrored > MAX_FEATURES or not 1 <= hashes <= 8 or quality > 100:
        raise ValueError("counts out of range")
    if mirrored and not flags & _HAS_MIRROR:
        raise ValueError("mirrored features without their flag")
    face_bytes = _FACE.size if flags & _HAS_FACE else 0
    expected = (
        _HEAD.size + _PDQ_BYTES * hashes + face_bytes + FEATURE_BYTES * (count + mirrored) + grid
    )
    if len(data) != expected:
        raise ValueError(f"record holds {len(data)} bytes, its header says {expected}")
    at = _HEAD.size
    pdq: dict[str, PdqHash] = {}
    for _ in range(hashes):
        number = data[at]
        if number >= len(DIHEDRAL_ORIENTATIONS) or DIHEDRAL_ORIENTATIONS[number] in pdq:
            raise ValueError("PDQ orientations out of range or repeated")
        pdq[DIHEDRAL_ORIENTATIONS[number]] = PdqHash(bytes(data[at + 1 : at + _PDQ_BYTES]), quality)
        at += _PDQ_BYTES
    if "original" not in pdq:
        raise ValueError("no PDQ hash for the original orientation")
    face = np.zeros(0, np.int32)
    if face_bytes:
        face = np.array(_FACE.unpack_from(data, at), np.int32)
        if min(face[2:]) < 1:
            raise ValueError("a face box is [x, y, width, height] with a positive size")
        at += face_bytes
    features = _unpack_features(data, at, count)
    at += FEATURE_BYTES * count
    mirror = _unpack_features(data, at, mirrored)
    at += FEATURE_BYTES * mirrored
    return Signature(
        label=label,
        sha256=sha256,
        width=width,
        height=height,
        frame_width=frame_width,
        frame_height=frame_height,
        pdq=pdq,
        features=features,
        mirrored=mirror,
        grid=_unpack_grid(data[at:]),
        face=face,
    )


def _pack_features(features: LocalFeatures) -> bytes:
    if len(features) and not 0 <= features.octave.min() <= features.octave.max() < LEVELS:
        raise ValueError(f"a stored feature's pyramid level must be under {LEVELS}")
    xy = np.clip(np.rint(features.xy * XY_STEPS), 0, 4095).astype(np.uint32)
    turns = np.floor(features.angle * (ANGLE_STEPS / 360.0)).astype(np.int64) % ANGLE_STEPS
    angle = turns.astype(np.uint32)
    word = xy[:, 0] | xy[:, 1] << 12 | angle << 24 | features.octave.astype(np.uint32) << 29
    keypoints = word.astype("<u4").view(np.uint8).reshape(-1, 4)
    return np.ascontiguousarray(keypoints).tobytes() + features.descriptors.tobytes()


def _unpack_features(data: bytes, at: int, count: int) -> LocalFeatures:
    word = np.frombuffer(data, "<u4", count, at).astype(np.uint32)
    descriptors = np.frombuffer(data, np.uint8, count * DESCRIPTOR_BYTES, at + 4 * count)
    xy = np.stack([word & 0xFFF, word >> 12 & 0xFFF], axis=1).astype(np.float32)
    angle = ((word >> 24 & 0x1F).astype(np.float32) + np.float32(0.5)) * np.float32(
        360 / ANGLE_STEPS
    )
    octave = (word >> 29).astype(np.int8)
    return LocalFeatures(
        xy / np.float32(XY_STEPS),
        orb_size(octave),
        angle,
        octave,
        descriptors.reshape(count, DESCRIPTOR_BYTES).copy(),
    )


def _pack_grid(grid: np.ndarray) -> bytes:
    """Each channel's plane less the row above it (modulo 256), compressed."""
    planes = np.ascontiguousarray(grid.transpose(2, 0, 1))
    deltas = np.diff(planes, axis=1, prepend=np.uint8(0)).tobytes()
    return lzma.compress(deltas, format=lzma.FORMAT_RAW, filters=_GRID_FILTERS)


def _unpack_grid(data: bytes) -> np.ndarray:
    unpacker = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=_GRID_FILTERS)
    try:
        raw = unpacker.decompress(data, GRID_BYTES + 1)
    except lzma.LZMAError as error:
        raise ValueError(f"grid does not decompress ({error})") from None
    if len(raw) != GRID_BYTES or unpacker.unused_data:
        raise ValueError("grid has the wrong size")
    deltas = np.frombuffer(raw, np.uint8).reshape(GRID_CHANNELS, GRID_ROWS, GRID_COLS)
    return np.ascontiguousarray(np.cumsum(deltas, axis=1, dtype=np.uint8).transpose(1, 2, 0))
