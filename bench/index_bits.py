"""Which ORB bits survive edits: the bit order of the compact index's words and signatures.

    python -m bench.index_bits --data ../shared/data --name shared

The compact index (index/compact.py) files a descriptor under a word made of some of its bits
and reads the lists one bit away; a copy's descriptor reaches its photo's list only if at most
one of those bits flipped. ORB's 256 tests differ in how often an edit flips them (a test
between two pixels of nearly equal brightness flips under any recompression), so the word is
made of the bits that flip least. Measured on the shared distractor photos (never on the
benchmark's cases): each photo is edited in a few harmless ways (half size, a third, JPEG at
quality 35, a crop, a small rotation, a tone curve), the photo's registered features are mapped
through the known edit onto the edited image's features, and a pair within PAIR_PIXELS whose
descriptors are within PAIR_BITS counts each bit that differs. Bits are then taken greedily:
the least flipped bit that splits the photos' descriptors evenly enough (BALANCE) and is little
correlated with those already taken (CORRELATION). The order is a constant in compact.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from bench.results import save
from counterfake.imaging import load_image
from counterfake.signature.extract import REFERENCE_SIDE, make_query, make_signature

PAIR_PIXELS = 2.5  # of the scanned image's working frame
PAIR_BITS = 80  # farther descriptors at the same spot are another corner
BALANCE = 0.3  # a bit is set in between this share of descriptors and 1 - it
CORRELATION = 0.3  # most |correlation| with a bit already taken


def _edits(width: int, height: int) -> list[tuple[str, np.ndarray, tuple[int, int], int]]:
    """(name, 2x3 affine map from photo to edited pixels, edited size, JPEG quality)."""
    centre = (width / 2, height / 2)
    x0, y0 = round(width * 0.15), round(height * 0.1)
    return [
        ("half", np.array([[0.5, 0, 0], [0, 0.5, 0]]), (width // 2, height // 2), 85),
        ("third", np.array([[1 / 3, 0, 0], [0, 1 / 3, 0]]), (width // 3, height // 3), 85),
        ("jpeg35", np.array([[1.0, 0, 0], [0, 1.0, 0]]), (width, height), 35),
        ("crop", np.array([[1.0, 0, -x0], [0, 1.0, -y0]]), (width - 2 * x0, height - 2 * y0), 85),
        ("rotate", cv2.getRotationMatrix2D(centre, 7, 1.0), (width, height), 85),
        ("tone", np.array([[1.0, 0, 0], [0, 1.0, 0]]), (width, height), 85),
    ]


def _jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return np.ascontiguousarray(cv2.imdecode(data, cv2.IMREAD_COLOR)[:, :, ::-1])


def bit_pairs(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(registered bits, edited bits) of every feature pair the edits keep, and the photo's
    registered bits (for balance and correlation)."""
    rgb = load_image(path)
    height, width = rgb.shape[:2]
    reference = make_signature(rgb, "x", "0" * 64, exchange=False, face=False).features
    to_photo = max(height, width) / REFERENCE_SIDE
    pairs = []
    for name, affine, size, quality in _edits(width, height):
        edited = cv2.warpAffine(rgb, affine, size, flags=cv2.INTER_AREA)
        if name == "tone":
            curve = (255 * (np.arange(256) / 255) ** 0.7).astype(np.uint8)
            edited = curve[edited]
        query = make_query(_jpeg(edited, quality))
        if len(query.features) == 0:
            continue
        photo_xy = reference.xy * to_photo
        landed = (photo_xy @ affine[:, :2].T + affine[:, 2]) * query.scale
        gaps = np.linalg.norm(landed[:, None, :] - query.features.xy[None, :, :], axis=2)
        nearest = gaps.argmin(axis=1)
        near = gaps[np.arange(len(landed)), nearest] <= PAIR_PIXELS
        ours = np.unpackbits(reference.descriptors[near], axis=1, bitorder="little")
        theirs = np.unpackbits(query.features.descriptors[nearest[near]], axis=1, bitorder="little")
        same_corner = (ours != theirs).sum(axis=1) <= PAIR_BITS
        pairs.append(ours[same_corner] != theirs[same_corner])
    bits = np.unpackbits(reference.descriptors, axis=1, bitorder="little")
    return np.concatenate(pairs), bits


def order(flip_rate: np.ndarray, bits: np.ndarray) -> list[int]:
    """Every bit, the most useful first (see the module's docstring); bits that fail the
    balance or correlation test follow, least flipped first."""
    share = bits.mean(axis=0)
    correlation = np.nan_to_num(np.corrcoef(bits.T.astype(np.float64)))
    taken: list[int] = []
    for bit in np.argsort(flip_rate, kind="stable").tolist():
        balanced = BALANCE <= share[bit] <= 1 - BALANCE
        if balanced and all(abs(correlation[bit, other]) <= CORRELATION for other in taken):
            taken.append(bit)
    rest = [b for b in np.argsort(flip_rate, kind="stable").tolist() if b not in taken]
    return taken + rest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--photos", type=int, default=150)
    parser.add_argument("--name", help="save the run as bench/results/index-bits-NAME.json")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    paths = sorted(str(p) for p in (args.data / "distractors").glob("*.jpg"))[: args.photos]
    flips, bits = zip(*(bit_pairs(p) for p in paths), strict=True)
    flipped = np.concatenate(flips)
    flip_rate = flipped.mean(axis=0)
    ranked = order(flip_rate, np.concatenate(bits))
    out = {
        "photos": len(paths),
        "pairs": len(flipped),
        "mean_flip_rate": float(flip_rate.mean()),
        "flip_rate": flip_rate.round(4).tolist(),
        "order": ranked,
        "word_flip_rate_first_20": float(flip_rate[ranked[:20]].mean()),
        "word_flip_rate_orb_first_20": float(flip_rate[:20].mean()),
    }
    print({k: v for k, v in out.items() if k not in ("flip_rate", "order")})
    print("order:", ranked)
    if args.name:
        save(f"index-bits-{args.name}", out)


if __name__ == "__main__":
    main()
