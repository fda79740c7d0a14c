"""Cases from the studio and scenes photo sources, in bench/cases.py's manifest format.

    python -m bench.sources --data ../shared/data --source studio --out bench/out/studio/cases
    python -m bench.sources --data ../shared/data --source scenes --out bench/out/scenes/cases
    python -m bench.accuracy --cases bench/out/studio/cases

bench/cases.py builds its cases from people/ only. These two sources are the negatives today's
matching was not tuned on, and bench/accuracy.py scores them unchanged:

- **studio**: e-commerce photos of many women in the same few poses on a plain background
  (192x256). A seeded half is registered; every case made from the other half is a negative.
  Each source gives 4 reposts (jpeg, half, crop, flip) and 3 manipulated derivatives (blur,
  colour, inpaint over the garment mask, each followed by a transform).
- **scenes**: groups of distinct holiday photos of one scene. Each group's ``_a`` photo is
  registered and gives 3 reposts (jpeg, crop, half) and 2 manipulated derivatives (blur,
  colour over a seeded central region of 20-35%); every other photo of the group is scanned as
  a negative: another shot of the same scene is never a repost or a derivative.

Photos that are the same picture in the data itself are kept once (``same_picture``): studio
holds byte-identical files under different ids, and scenes one photo twice, at two sizes, in two
groups. A match between them is right, not false. What was left out is printed and saved in
the manifest.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from bench.cases import Placed, apply_edit, choose_encoding, post_transform, read_rgb
from counterfake.signature.pdq import hamming_distance, pdq_hash

SEED = 20261207
SAME_PHOTO = 10  # PDQ bits: at most this far apart, two files are one picture
RESIZED_COPY = 6.0  # grey levels: a resized copy differs by at most this much at the median
STUDIO_PLAN = [
    (None, "jpeg"),
    (None, "half"),
    (None, "crop"),
    (None, "flip"),
    ("blur", None),
    ("colour", None),
    ("inpaint", None),
]
SCENES_PLAN = [(None, "jpeg"), (None, "crop"), (None, "half"), ("blur", None), ("colour", None)]
EDIT_TRANSFORMS = ("none", "jpeg", "half", "crop", "flip")


def distinct(paths: list[Path]) -> tuple[list[Path], list[str]]:
    """The paths with every repeat of an earlier picture left out, and the names left out."""
    kept: list[tuple[Path, bytes, np.ndarray]] = []
    dropped: list[str] = []
    for path in paths:
        rgb = read_rgb(path)
        bits = pdq_hash(rgb).bits
        if any(same_picture(bits, rgb, other_bits, other) for _, other_bits, other in kept):
            dropped.append(path.name)
        else:
            kept.append((path, bits, rgb))
    return [path for path, _, _ in kept], dropped


def same_picture(bits: bytes, rgb: np.ndarray, other_bits: bytes, other: np.ndarray) -> bool:
    """Whether two files of the data are one picture: PDQ hashes at most SAME_PHOTO bits apart,
    or one a resized copy of the other (the same proportions, another size, and the same grey
    levels within RESIZED_COPY at the median once both are at the smaller size; Holidays keeps
    one photo as a 400x300 query in one group and a 325x243 image in another)."""
    if hamming_distance(bits, other_bits) <= SAME_PHOTO:
        return True
    (h1, w1), (h2, w2) = rgb.shape[:2], other.shape[:2]
    if (h1, w1) == (h2, w2) or abs(w1 / h1 - w2 / h2) > 0.01:
        return False
    size = (min(w1, w2), min(h1, h2))
    grey = [
        cv2.cvtColor(cv2.resize(x, size, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
        for x in (rgb, other)
    ]
    return float(np.median(np.abs(grey[0].astype(float) - grey[1]))) <= RESIZED_COPY


def central_region(shape: tuple[int, ...], rng: random.Random) -> np.ndarray:
    """A seeded ellipse of 20-35% of the image, off-centre, as an edit region for scenes."""
    height, width = shape[:2]
    target = rng.uniform(0.20, 0.35)
    axes = (int(width * np.sqrt(target / np.pi) * 1.1), int(height * np.sqrt(target / np.pi)))
    centre = (
        int(width * rng.uniform(0.35, 0.65)),
        int(height * rng.uniform(0.4, 0.7)),
    )
    region = np.zeros((height, width), np.uint8)
    cv2.ellipse(region, centre, axes, 0, 0, 360, 1, -1)
    return region.astype(bool)


def make_case(
    out: Path,
    source: str,
    photo: np.ndarray,
    region: np.ndarray,
    plan: tuple[str | None, str | None],
    registered: bool,
    rng: random.Random,
    distractors: tuple[Path, ...],
) -> dict:
    edit, transform = plan
    placed = Placed(photo, None, np.eye(3))
    if edit is not None:
        edited, _ = apply_edit(photo, region, edit, rng, [])
        placed = Placed(edited, region.astype(np.uint8) * 255, np.eye(3))
        transform = rng.choice(EDIT_TRANSFORMS)
    assert transform is not None
    placed = post_transform(placed, transform, rng, photo, distractors)
    file_format, quality = choose_encoding(transform, rng)
    case_id = f"{source}-{edit or 'repost'}-{transform}"
    path = f"images/{case_id}.{'png' if file_format == 'PNG' else 'jpg'}"
    options = {"quality": quality} if quality else {"compress_level": 1}
    Image.fromarray(placed.rgb).save(out / path, format=file_format, **options)
    mask = None
    if placed.mask is not None:
        mask = f"masks/{case_id}.png"
        Image.fromarray(placed.mask).save(out / mask, compress_level=1)
    return {
        "id": case_id,
        "path": path,
        "source": source,
        "registered": registered,
        "expected_kind": "repost" if edit is None else "manipulated",
        "edit": edit,
        "target_fraction": None if edit is None else round(float(region.mean()) * 10) / 10,
        "region_fraction": None if edit is None else round(float(region.mean()), 4),
        "transform": transform,
        "mask": mask,
    }


def build(data: Path, source_set: str, out: Path, seed: int = SEED) -> dict:
    data = data.resolve()
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    folder = data / source_set
    if source_set == "studio":
        photos, dropped = distinct(sorted(folder.glob("[0-9][0-9][0-9][0-9].jpg")))
        registered = set(rng.sample([p.stem for p in photos], len(photos) // 2))
        negatives: list[Path] = []
        plan = STUDIO_PLAN
    else:
        groups: dict[str, list[Path]] = {}
        for path in sorted(folder.glob("group*_*.jpg")):
            groups.setdefault(path.stem.split("_")[0], []).append(path)
        queries, dropped = distinct([paths[0] for paths in groups.values()])
        photos = queries
        registered = {p.stem for p in photos}
        others = [p for paths in groups.values() for p in paths[1:]]
        # another file of the same picture as a registered one is a copy in the data, not a
        # negative: left out like the repeats among the registered photos
        registered_pictures = [(pdq_hash(rgb).bits, rgb) for rgb in map(read_rgb, queries)]
        negatives = []
        for path in others:
            rgb = read_rgb(path)
            bits = pdq_hash(rgb).bits
            if any(same_picture(bits, rgb, *picture) for picture in registered_pictures):
                dropped.append(path.name)
            else:
                negatives.append(path)
        plan = SCENES_PLAN
    distractors = tuple(sorted((data / "distractors").glob("*.jpg")))
    cases = []
    for path in photos:
        source_rng = random.Random(f"{seed}-{path.stem}")
        photo = read_rgb(path)
        mask_path = path.with_name(f"{path.stem}_mask.png")
        if mask_path.exists():
            region = np.asarray(Image.open(mask_path)) > 127
        else:
            region = central_region(photo.shape, source_rng)
        for step in plan:
            cases.append(
                make_case(
                    out,
                    path.stem,
                    photo,
                    region,
                    step,
                    path.stem in registered,
                    source_rng,
                    distractors,
                )
            )
    manifest = {
        "seed": seed,
        "data": str(data),
        "source_set": source_set,
        "sources": [
            {"id": p.stem, "path": str(p), "registered": p.stem in registered} for p in photos
        ],
        "cases": cases,
        "distractors": [str(p) for p in negatives],
        "negative_cases": [c["id"] for c in cases if not c["registered"]],
        "same_picture_dropped": dropped,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--source", choices=("studio", "scenes"), required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    manifest = build(args.data, args.source, args.out, args.seed)
    print(
        f"{args.source}: {len(manifest['cases'])} cases from {len(manifest['sources'])} photos "
        f"({sum(s['registered'] for s in manifest['sources'])} registered), "
        f"{len(manifest['distractors'])} further negatives; "
        f"{len(manifest['same_picture_dropped'])} repeats of one picture left out"
    )


if __name__ == "__main__":
    main()
