"""PDQ agrees with Meta's reference, so counterfake's hashes can be exchanged with PDQ programmes.

The reference vectors live beside the repository in ../shared/data/pdq_reference (see its
README.md); the tests that need them are skipped, with the reason, when that folder is absent.
Two kinds of expected values are used:

* ``computed_cpp_reference*.csv``: Meta's C++ ``pdq-photo-hasher`` built from the ThreatExchange
  snapshot and run on these very files. Fed the same pixels, a faithful implementation agrees bit
  for bit, so the bound is tight.
* ``expected_pdq*.csv``: the values Meta published (2017-era C++, Java, WASM). Meta's own C++
  build is up to 12 bits from them (JPEG decoders changed since), so that is the bound there.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from counterfake.signature.pdq import (
    DIHEDRAL_ORIENTATIONS,
    HASH_BITS,
    MATCH_THRESHOLD,
    PDQ_PHOTO_HASHER_NAMES,
    PdqHash,
    hamming_distance,
    pdq_dihedral_hashes,
    pdq_hash,
)

REFERENCE = SHARED_DATA / "pdq_reference"
MISSING = f"Meta's PDQ reference vectors are not at {REFERENCE} (../shared/data beside the repo)"

# Against Meta's C++ build run on the same files: measured 0 bits and equal quality on all 32
# images and all 64 dihedral hashes. A little room for float rounding on other platforms.
MAX_BITS_FROM_CPP_BUILD = 2
# Against Meta's published values: Meta's own C++ build is 12 bits away on three rows
# (expected_pdq_provenance.csv); we measured the same maximum, 12, and a mean of 2.9 bits.
MAX_BITS_FROM_PUBLISHED = 12
MAX_MEAN_BITS_FROM_PUBLISHED = 4
# Meta's Java dihedral values for bridge-1 are up to 10 bits from its C++ build (and from us).
MAX_BITS_FROM_PUBLISHED_DIHEDRAL = 10
MAX_QUALITY_DIFFERENCE = 1  # measured 0 everywhere

# The regression-test files: bridge-1 turned into each orientation and saved again as JPEG.
DIH_FILES = {
    "bridge-1-original.jpg": "original",
    "bridge-2-rotate-90.jpg": "rotate90",
    "bridge-3-rotate-180.jpg": "rotate180",
    "bridge-4-rotate-270.jpg": "rotate270",
    "bridge-5-flipx.jpg": "flipX",
    "bridge-6-flipy.jpg": "flipY",
    "bridge-7-flip-plus-1.jpg": "flipPlus1",
    "bridge-8-flip-minus-1.jpg": "flipMinus1",
}
# The same orientations applied to pixels, for images made in the tests.
ORIENT_PIXELS = {
    "original": lambda a: a,
    "rotate90": lambda a: np.rot90(a, 1),  # counter-clockwise, as Meta means it
    "rotate180": lambda a: np.rot90(a, 2),
    "rotate270": lambda a: np.rot90(a, 3),
    "flipX": lambda a: a[::-1],  # top and bottom change places
    "flipY": lambda a: a[:, ::-1],  # left and right change places
    "flipPlus1": lambda a: a.transpose(1, 0, 2),  # upper left stays
    "flipMinus1": lambda a: np.rot90(a, 2).transpose(1, 0, 2),  # upper right stays
}


def reference_rows(name: str) -> list:
    """The rows of a reference CSV, or one skipped placeholder when the data is absent."""
    if not REFERENCE.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=MISSING))]
    with open(REFERENCE / name, newline="") as handle:
        return list(csv.DictReader(handle))


def row_id(row: dict | None) -> str:
    if row is None:
        return "absent"
    return f"{row['file']}:{row['orientation']}" if "orientation" in row else row["file"]


@pytest.fixture
def reference() -> Path:
    if not REFERENCE.is_dir():
        pytest.skip(MISSING)
    return REFERENCE


def decode(path: Path) -> np.ndarray:
    """Pillow's decode without EXIF rotation, as Meta's tools read files."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def bits_apart(ours: PdqHash, text: str) -> int:
    return hamming_distance(ours.bits, PdqHash.from_hex(text).bits)


def smooth_test_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A photo-like image: coarse random colour blobs, smoothly enlarged."""
    noise = np.random.default_rng(seed).integers(0, 256, (9, 12, 3), np.uint8)
    return np.asarray(Image.fromarray(noise).resize((width, height), Image.BICUBIC))


# ---------------------------------------------------------------- against Meta's vectors


@pytest.mark.parametrize("row", reference_rows("computed_cpp_reference.csv"), ids=row_id)
def test_hash_and_quality_equal_meta_cpp_build(row):
    ours = pdq_hash(decode(REFERENCE / row["file"]))
    assert bits_apart(ours, row["pdq_hex"]) <= MAX_BITS_FROM_CPP_BUILD
    assert abs(ours.quality - int(row["quality"])) <= MAX_QUALITY_DIFFERENCE


@pytest.mark.parametrize("row", reference_rows("expected_pdq.csv"), ids=row_id)
def test_hash_and_quality_agree_with_meta_published_values(row):
    ours = pdq_hash(decode(REFERENCE / row["file"]))
    assert bits_apart(ours, row["pdq_hex"]) <= MAX_BITS_FROM_PUBLISHED
    assert abs(ours.quality - int(row["quality"])) <= MAX_QUALITY_DIFFERENCE


def test_disagreement_with_meta_published_values_is_a_few_bits_on_average(
    reference, record_property
):
    with open(reference / "expected_pdq.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    distances = [bits_apart(pdq_hash(decode(reference / r["file"])), r["pdq_hex"]) for r in rows]
    record_property("max_bits_from_published", max(distances))
    record_property("mean_bits_from_published", float(np.mean(distances)))
    print(f"PDQ vs Meta published: max {max(distances)} bits, mean {np.mean(distances):.2f}")
    assert np.mean(distances) <= MAX_MEAN_BITS_FROM_PUBLISHED


@pytest.mark.parametrize("row", reference_rows("computed_cpp_reference_dihedral.csv"), ids=row_id)
def test_dihedral_hashes_equal_meta_cpp_build(row):
    ours = pdq_dihedral_hashes(decode(REFERENCE / row["file"]))
    orientation = PDQ_PHOTO_HASHER_NAMES[row["orientation"]]
    assert bits_apart(ours[orientation], row["pdq_hex"]) <= MAX_BITS_FROM_CPP_BUILD


@pytest.mark.parametrize("row", reference_rows("expected_pdq_dihedral.csv"), ids=row_id)
def test_dihedral_hashes_agree_with_meta_published_values(row):
    ours = pdq_dihedral_hashes(decode(REFERENCE / row["file"]))
    orientation = PDQ_PHOTO_HASHER_NAMES[row["orientation"]]
    assert bits_apart(ours[orientation], row["pdq_hex"]) <= MAX_BITS_FROM_PUBLISHED_DIHEDRAL


@pytest.mark.parametrize("name", sorted(DIH_FILES))
def test_rotated_or_flipped_file_is_nearest_its_dihedral_of_the_original(reference, name):
    """A rotated repost is recognised: its hash is nearest the matching dihedral hash.

    Not identical: the file was re-encoded, and PDQ's sampling is not exactly symmetric
    (measured 0 to 18 bits, the same as Meta's C++ tool gives).
    """
    dihedral = pdq_dihedral_hashes(decode(reference / "reg-test-input/dih/bridge-1-original.jpg"))
    turned = pdq_hash(decode(reference / "reg-test-input/dih" / name))
    distances = {o: hamming_distance(h.bits, turned.bits) for o, h in dihedral.items()}
    assert min(distances, key=distances.get) == DIH_FILES[name]
    assert distances[DIH_FILES[name]] <= MATCH_THRESHOLD
    others = [d for o, d in distances.items() if o != DIH_FILES[name]]
    assert min(others) > 3 * MATCH_THRESHOLD  # the other orientations are unrelated hashes


# ---------------------------------------------------------------- behaviour on made images


def test_dihedral_names_and_order_are_meta_s():
    hashes = pdq_dihedral_hashes(smooth_test_image(120, 160))
    assert tuple(hashes) == DIHEDRAL_ORIENTATIONS
    assert DIHEDRAL_ORIENTATIONS[0] == "original"
    assert set(PDQ_PHOTO_HASHER_NAMES.values()) == set(DIHEDRAL_ORIENTATIONS)


def test_dihedral_original_is_the_plain_hash_and_all_share_its_quality():
    image = smooth_test_image(300, 400)
    plain = pdq_hash(image)
    hashes = pdq_dihedral_hashes(image)
    assert hashes["original"] == plain
    assert {h.quality for h in hashes.values()} == {plain.quality}
    assert len({h.bits for h in hashes.values()}) == 8


@pytest.mark.parametrize("orientation", DIHEDRAL_ORIENTATIONS)
def test_dihedral_hash_matches_hashing_the_turned_pixels(orientation):
    """The DCT-domain shortcut gives what hashing the rotated or flipped image gives.

    A 400x300 image gets box windows of 4 along its width and 3 along its height. The odd one
    is symmetric, so orientations that only reverse the rows (flipX, and flipPlus1 and rotate270,
    which add a transpose) come out exact; the even one shifts by half a pixel when the columns
    are reversed, which costs a few bits (measured 12 to 14, as Meta's C++ code would give).
    """
    image = smooth_test_image(300, 400)
    turned = pdq_hash(np.ascontiguousarray(ORIENT_PIXELS[orientation](image)))
    assert hamming_distance(turned.bits, pdq_dihedral_hashes(image)[orientation].bits) <= 20


def test_transposed_pixels_hash_exactly_to_flip_plus_1():
    image = smooth_test_image(257, 333, seed=3)
    transposed = pdq_hash(np.ascontiguousarray(image.transpose(1, 0, 2)))
    assert hamming_distance(transposed.bits, pdq_dihedral_hashes(image)["flipPlus1"].bits) <= 2


def test_large_image_is_first_resized_to_512_square_by_nearest_neighbour_as_meta_does():
    image = smooth_test_image(700, 1000)
    rows = np.arange(512) * 700 // 512
    cols = np.arange(512) * 1000 // 512
    assert pdq_hash(image) == pdq_hash(np.ascontiguousarray(image[rows][:, cols]))


def test_hash_sets_half_the_bits():
    """Thresholding at the median sets 128 of the 256 bits for any textured image."""
    bits = pdq_hash(smooth_test_image(240, 320, seed=5)).bits
    assert int.from_bytes(bits, "little").bit_count() == HASH_BITS // 2


def test_flat_image_has_quality_zero():
    assert pdq_hash(np.full((200, 300, 3), 128, np.uint8)).quality == 0


def test_textured_image_has_full_quality():
    assert pdq_hash(smooth_test_image(300, 400)).quality == 100


def test_image_under_five_pixels_a_side_gets_the_zero_hash():
    tiny = np.full((4, 100, 3), 200, np.uint8)
    assert pdq_hash(tiny) == PdqHash(bytes(32), 0)
    assert set(pdq_dihedral_hashes(tiny).values()) == {PdqHash(bytes(32), 0)}


def test_grey_image_hashes_like_the_same_rgb_image():
    grey = smooth_test_image(200, 240)[:, :, 1].copy()
    as_rgb = np.repeat(grey[:, :, None], 3, axis=2)
    assert hamming_distance(pdq_hash(grey).bits, pdq_hash(as_rgb).bits) <= 2


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((64, 64, 3), np.float32),
        np.zeros((64, 64, 4), np.uint8),
        np.zeros((64, 64, 3, 1), np.uint8),
        [[0] * 64] * 64,
    ],
    ids=["float", "rgba", "4-d", "list"],
)
def test_anything_but_an_8_bit_rgb_or_grey_array_is_refused(bad):
    with pytest.raises(ValueError, match="PDQ takes"):
        pdq_hash(bad)


# ---------------------------------------------------------------- text form and distance


def test_hex_round_trip_keeps_meta_s_text():
    text = "f8f8f0cce0f4e84d0e370a22028f67f0b36e2ed596623e1d33e6339c4e9c9b22"
    assert PdqHash.from_hex(text).hex() == text
    assert PdqHash.from_hex(text.upper()).hex() == text
    assert PdqHash.from_hex(f" {text}\n", quality=50) == PdqHash.from_hex(text, 50)


def test_hex_bit_k_is_bit_k_of_the_256_bit_number():
    """Meta's convention: bit k of the hash is bit k of int(hex, 16)."""
    for k in (0, 1, 15, 16, 200, 255):
        single = PdqHash.from_hex(f"{1 << k:064x}")
        assert single.bits[k // 8] == 1 << (k % 8)
        assert int(single.hex(), 16) == 1 << k


@given(st.binary(min_size=32, max_size=32), st.integers(0, 100))
def test_any_hash_survives_hex_round_trip(bits, quality):
    original = PdqHash(bits, quality)
    assert PdqHash.from_hex(original.hex(), quality) == original


@pytest.mark.parametrize(
    "bad",
    ["", "abc", "0" * 63, "0" * 65, "g" * 64, "0x" + "0" * 62, "0" * 31 + " " + "0" * 32],
    ids=["empty", "short", "63", "65", "not-hex", "0x-prefix", "inner-space"],
)
def test_from_hex_refuses_malformed_text(bad):
    with pytest.raises(ValueError, match="64 hexadecimal digits"):
        PdqHash.from_hex(bad)


def test_from_hex_refuses_text_that_is_not_a_string():
    with pytest.raises(ValueError, match="64 hexadecimal digits"):
        PdqHash.from_hex(b"0" * 64)  # type: ignore[arg-type]


@pytest.mark.parametrize("quality", [-1, 101])
def test_quality_outside_0_to_100_is_refused(quality):
    with pytest.raises(ValueError, match="quality"):
        PdqHash.from_hex("0" * 64, quality=quality)


def test_hash_must_hold_32_bytes():
    with pytest.raises(ValueError, match="32 bytes"):
        PdqHash(bytes(31), 100)


def test_hamming_distance_counts_differing_bits():
    zero = bytes(32)
    assert hamming_distance(zero, zero) == 0
    assert hamming_distance(zero, b"\x01" + bytes(31)) == 1
    assert hamming_distance(zero, bytes(31) + b"\x80") == 1
    assert hamming_distance(zero, b"\xff" * 32) == HASH_BITS
    a, b = b"\x0f" * 32, b"\x3c" * 32
    assert hamming_distance(a, b) == hamming_distance(b, a) == 4 * 32


def test_hamming_distance_refuses_hashes_of_different_lengths():
    with pytest.raises(ValueError, match="different lengths"):
        hamming_distance(bytes(32), bytes(31))


def test_match_threshold_is_meta_s_recommendation():
    assert MATCH_THRESHOLD == 31
