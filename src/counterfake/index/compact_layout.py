"""What the compact index (compact.py) keeps of a descriptor: its word, its Hamming-embedding
signature and a byte of geometry, and the :class:`Layout` that says how many of each.

A descriptor's bits are taken in ROBUST_BITS's order: the word's first (the bits that edits
flip least, so that a copy's descriptor most often lands in its photo's list or one bit
away), then the signature's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from counterfake.signature.features import LocalFeatures

# ORB's bits, least flipped by edits first, as ``python -m bench.index_bits --name shared``
# measured them on the shared distractor photos (bench/results/index-bits-shared.json).
# fmt: off
ROBUST_BITS: tuple[int, ...] = (
    235, 31, 150, 207, 84, 205, 203, 62, 47, 187, 52, 107, 148, 240, 192, 204, 208, 219, 87, 57,
    133, 214, 210, 130, 254, 193, 238, 247, 48, 110, 189, 68, 8, 122, 75, 7, 69, 34, 145, 241, 126,
    230, 89, 191, 209, 85, 173, 105, 134, 86, 117, 40, 66, 226, 211, 124, 1, 131, 246, 43, 97, 244,
    228, 221, 91, 116, 118, 138, 188, 136, 215, 178, 20, 167, 13, 54, 65, 27, 121, 175, 161, 81, 98,
    234, 144, 155, 76, 70, 224, 245, 111, 99, 223, 237, 51, 190, 30, 26, 174, 60, 100, 249, 239,
    119, 55, 6, 152, 135, 217, 41, 146, 151, 183, 157, 5, 102, 142, 22, 220, 159, 128, 72, 88, 216,
    96, 177, 212, 184, 95, 147, 35, 176, 123, 53, 186, 0, 140, 137, 49, 171, 132, 32, 67, 213, 79,
    28, 195, 199, 156, 153, 172, 17, 250, 92, 77, 197, 103, 125, 94, 104, 106, 229, 255, 149, 154,
    21, 163, 15, 169, 143, 23, 61, 71, 231, 242, 194, 222, 196, 160, 108, 158, 233, 179, 139, 168,
    181, 78, 4, 24, 113, 129, 182, 114, 141, 101, 162, 2, 253, 29, 218, 109, 248, 39, 36, 112, 33,
    46, 50, 74, 90, 38, 44, 236, 201, 164, 252, 59, 198, 166, 64, 12, 73, 200, 82, 227, 37, 63, 18,
    42, 45, 243, 16, 9, 232, 202, 251, 206, 93, 14, 225, 58, 11, 127, 120, 10, 115, 165, 56, 180,
    170, 83, 80, 19, 185, 3, 25,
)
# fmt: on
ORB_BITS = tuple(range(256))  # ORB's own order, for comparison
ANGLE_BINS = 16
SCALE_STEP = 0.5  # of log2(keypoint size) per scale bin; 16 bins
SCALE_BINS = 16


@dataclass(frozen=True)
class Layout:
    """What a posting keeps and how a scanned descriptor is compared with it."""

    indexed: int = 128  # descriptors indexed per photo (per orientation: half each of two)
    signature_bits: int = 32  # 8, 16, 32 or 64
    max_distance: int = 5  # signature bits within which a posting votes
    word_bits: int = 20
    probe_radius: int = 1  # a scanned descriptor reads the lists within this many word bits
    orientations: int = 1  # 1: the scanned image's mirror is queried; 2: both are indexed
    query_features: int = 1000  # of a scanned image's spread-ordered descriptors
    bits: tuple[int, ...] = ROBUST_BITS  # the word's bits, then the signature's

    def __post_init__(self) -> None:
        if self.signature_bits not in (8, 16, 32, 64):
            raise ValueError("a signature is 8, 16, 32 or 64 bits")
        if self.probe_radius not in (0, 1, 2):
            raise ValueError("a scanned descriptor reads lists 0, 1 or 2 word bits away")
        if self.orientations not in (1, 2):
            raise ValueError("a photo is indexed in one orientation or two")
        if not 8 <= self.word_bits <= 24 or self.word_bits + self.signature_bits > 256:
            raise ValueError("a word is 8 to 24 bits")
        if sorted(self.bits) != list(range(256)):
            raise ValueError("the bit order names each of a descriptor's 256 bits once")

    @property
    def signature_dtype(self) -> np.dtype:
        return np.dtype(f"uint{self.signature_bits}")

    @property
    def posting_bytes(self) -> int:
        return 4 + self.signature_bits // 8 + 1

    @property
    def max_photo_id(self) -> int:
        return (2**32 - 1) // self.orientations


def split_bits(descriptors: np.ndarray, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """Each descriptor's word (the first ``word_bits`` bits of the layout's order) and
    signature (the next ``signature_bits``)."""
    bits = np.unpackbits(descriptors, axis=1, bitorder="little")
    end = layout.word_bits + layout.signature_bits
    chosen = bits[:, list(layout.bits[:end])]
    word = np.packbits(chosen[:, : layout.word_bits], axis=1, bitorder="little")
    word = np.pad(word, ((0, 0), (0, 4 - word.shape[1])))
    signature = np.packbits(chosen[:, layout.word_bits :], axis=1, bitorder="little")
    return (
        np.ascontiguousarray(word).view("<u4").ravel().astype(np.uint32),
        np.ascontiguousarray(signature).view(layout.signature_dtype.newbyteorder("<")).ravel(),
    )


def geometry(features: LocalFeatures) -> np.ndarray:
    """One byte per feature: its orientation bin (low 4 bits) and scale bin (high 4 bits)."""
    angle = np.floor(features.angle * ANGLE_BINS / 360.0).astype(np.int64) % ANGLE_BINS
    scale = np.log2(np.maximum(features.size, 1.0)) / SCALE_STEP
    scale = np.clip(scale, 0, SCALE_BINS - 1).astype(np.int64)
    return (angle | scale << 4).astype(np.uint8)
