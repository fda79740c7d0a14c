"""Held-out cases: edits and post-transforms that bench/cases.py never makes, scored the same way.

    python -m bench.unseen --data ../shared/data --out bench/out/unseen/cases
    python -m bench.accuracy --cases bench/out/unseen/cases

Every threshold of counterfake was set on bench/cases.py's cases; a real nudify bot or repost
channel does other things. This builder makes a second, smaller set with different harmless
edits over the clothing region and different repost transforms, so that the accuracy table can
be read on work nothing was tuned on. Its manifest has bench/cases.py's format, so
bench/accuracy.py scores it unchanged. Nothing here is used to choose or check a threshold.

- **Edits** (20%, 35%, 50% of the image, the region grown from the clothing mask as in
  bench/cases.py, never the head): ``mosaic`` (pixelated blocks), ``smooth`` (the region refilled
  with a heavily smoothed colour field from its surroundings, plus grain), ``clone`` (the region
  replaced by another part of the same photo, as a clone stamp does), ``stripes`` (a synthetic
  striped texture).
- **Transforms**: ``rotate`` (3-8 degrees, cropped to the inside), ``perspective`` (a corner
  pulled in by up to 6%), ``tone`` (gamma, contrast and saturation), ``grey`` (greyscale),
  ``stretch`` (one axis scaled by 1.15-1.3), ``stickers`` (opaque shapes and a caption over up to
  about 6% of the image), ``letterbox`` (the photo shrunk onto a blurred square copy of itself),
  ``webp`` (WebP at quality 25-45, scaled to 70%), and two beyond the issue's list, reported apart:
  ``crop20`` (20-25% cut away) and ``third`` (a third of the size).

Sources are a seeded sample of the people photos, independent of bench/cases.py's split: half
registered, half negatives, with a seeded sample of the distractors as further negatives.
"""

from __future__ import annotations

import argparse
import io
import random
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw

from bench.cases import (
    edit_region,
    feather_alpha,
    font,
    head_mask,
    read_rgb,
    remove_previous,
    resize,
    resize_mask,
    run_jobs,
    write_manifest,
)

SEED = 20261130
EDITS = ("mosaic", "smooth", "clone", "stripes")
SIZES = (0.20, 0.35, 0.50)
TRANSFORMS = (
    "rotate",
    "perspective",
    "tone",
    "grey",
    "stretch",
    "stickers",
    "letterbox",
    "webp",
    "crop20",
    "third",
)
SOURCES = 60
DISTRACTORS = 150


@dataclass(frozen=True)
class Job:
    data: Path
    out: Path
    source: str
    registered: bool
    offset: int


# ---- edits -------------------------------------------------------------------------------------


def mosaic_fill(rgb: np.ndarray, rng: random.Random) -> np.ndarray:
    height, width = rgb.shape[:2]
    block = max(4, round(width * rng.uniform(0.02, 0.04)))
    small = cv2.resize(rgb, (max(1, width // block), max(1, height // block)), cv2.INTER_AREA)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_NEAREST)


def smooth_fill(rgb: np.ndarray, region: np.ndarray, rng: random.Random) -> np.ndarray:
    """Normalised convolution of the pixels outside the region: a smooth field of nearby colour."""
    keep = (~region).astype(np.float32)[:, :, None]
    sigma = rng.uniform(20, 35)
    field = cv2.GaussianBlur(rgb * keep, (0, 0), sigma) / np.maximum(
        cv2.GaussianBlur(keep, (0, 0), sigma)[:, :, None], 1e-3
    )
    grain = np.random.default_rng(rng.randrange(2**32)).normal(0, 4, rgb.shape)
    return np.clip(field + grain, 0, 255)


def clone_fill(rgb: np.ndarray, rng: random.Random) -> np.ndarray:
    height, width = rgb.shape[:2]
    dx = round(width * rng.uniform(0.3, 0.5)) * rng.choice((-1, 1))
    dy = round(height * rng.uniform(-0.1, 0.1))
    return np.roll(rgb, (dy, dx), axis=(0, 1))


def stripes_fill(rgb: np.ndarray, rng: random.Random) -> np.ndarray:
    height, width = rgb.shape[:2]
    angle, period = rng.uniform(0, np.pi), rng.uniform(8, 30)
    ys, xs = np.mgrid[0:height, 0:width]
    phase = (xs * np.cos(angle) + ys * np.sin(angle)) / period
    colours = np.array([[rng.randint(0, 255) for _ in range(3)] for _ in range(2)], np.float32)
    weight = (0.5 + 0.5 * np.sin(2 * np.pi * phase))[:, :, None]
    return colours[0] * weight + colours[1] * (1 - weight)


def apply_edit(rgb: np.ndarray, region: np.ndarray, edit: str, rng: random.Random) -> np.ndarray:
    if edit == "mosaic":
        fill = mosaic_fill(rgb, rng)
    elif edit == "smooth":
        fill = smooth_fill(rgb, region, rng)
    elif edit == "clone":
        fill = clone_fill(rgb, rng)
    else:
        fill = stripes_fill(rgb, rng)
    alpha = feather_alpha(region, rng.uniform(2, 5))
    return (rgb * (1 - alpha) + fill * alpha).round().astype(np.uint8)


# ---- transforms --------------------------------------------------------------------------------


def warped(rgb: np.ndarray, mask: np.ndarray | None, matrix: np.ndarray, size: tuple[int, int]):
    image = cv2.warpPerspective(
        rgb, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )
    if mask is not None:
        mask = cv2.warpPerspective(mask, matrix, size, flags=cv2.INTER_NEAREST)
    return image, mask


def rotate(rgb, mask, rng):
    """Turned about the centre, then cropped to the largest upright box with no border."""
    height, width = rgb.shape[:2]
    angle = rng.uniform(3, 8) * rng.choice((-1, 1))
    turn = np.vstack([cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0), [0, 0, 1]])
    theta = np.radians(abs(angle))
    inner_w = (width * np.cos(theta) - height * np.sin(theta)) / np.cos(2 * theta)
    inner_h = (height * np.cos(theta) - width * np.sin(theta)) / np.cos(2 * theta)
    inner_w, inner_h = int(min(width, inner_w)), int(min(height, inner_h))
    shift = np.array([[1, 0, -(width - inner_w) / 2], [0, 1, -(height - inner_h) / 2], [0, 0, 1]])
    return warped(rgb, mask, shift @ turn, (inner_w, inner_h))


def perspective(rgb, mask, rng):
    height, width = rgb.shape[:2]
    corners = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    moved = corners.copy()
    corner = rng.randrange(4)
    pull = rng.uniform(0.03, 0.06)
    moved[corner] += np.float32([width * pull, height * pull]) * np.sign(
        np.float32([width / 2, height / 2]) - corners[corner]
    )
    matrix = cv2.getPerspectiveTransform(corners, moved)
    return warped(rgb, mask, matrix, (width, height))


def tone(rgb, mask, rng):
    gamma, contrast = rng.uniform(0.7, 1.4), rng.uniform(0.8, 1.25)
    image = 255 * (rgb / 255) ** gamma
    image = (image - 128) * contrast + 128
    grey = image.mean(axis=2, keepdims=True)
    image = grey + (image - grey) * rng.uniform(0.6, 1.5)
    return np.clip(image, 0, 255).round().astype(np.uint8), mask


def grey(rgb, mask, rng):
    return np.repeat(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2), mask


def stretch(rgb, mask, rng):
    height, width = rgb.shape[:2]
    factor = rng.uniform(1.15, 1.3)
    size = (
        (round(width * factor), height) if rng.random() < 0.5 else (width, round(height * factor))
    )
    return resize(rgb, size), None if mask is None else resize_mask(mask, size)


def stickers(rgb, mask, rng):
    """A few opaque discs and boxes and one caption bar, as a repost's decorations."""
    height, width = rgb.shape[:2]
    layer = Image.fromarray(rgb)
    draw = ImageDraw.Draw(layer)
    for _ in range(rng.randint(2, 4)):
        radius = round(min(width, height) * rng.uniform(0.04, 0.07))
        x, y = rng.randint(radius, width - radius), rng.randint(radius, height - radius)
        colour = tuple(rng.randint(0, 255) for _ in range(3))
        if rng.random() < 0.5:
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)
        else:
            draw.rectangle((x - radius, y - radius, x + radius, y + radius), fill=colour)
    size = max(12, height // 30)
    top = rng.choice((0, height - 2 * size))
    draw.rectangle((0, top, width, top + 2 * size), fill=(20, 20, 20))
    draw.text(
        (size // 2, top + size // 3), "new pics every day", font=font(rng, size), fill="white"
    )
    return np.asarray(layer), mask


def letterbox(rgb, mask, rng):
    height, width = rgb.shape[:2]
    side = max(width, height)
    background = cv2.GaussianBlur(cv2.resize(rgb, (side, side)), (0, 0), side / 30)
    scale = rng.uniform(0.75, 0.9)
    size = (round(width * scale), round(height * scale))
    x, y = (side - size[0]) // 2, (side - size[1]) // 2
    background[y : y + size[1], x : x + size[0]] = resize(rgb, size)
    placed_mask = None
    if mask is not None:
        placed_mask = np.zeros((side, side), np.uint8)
        placed_mask[y : y + size[1], x : x + size[0]] = resize_mask(mask, size)
    return background, placed_mask


def webp(rgb, mask, rng):
    height, width = rgb.shape[:2]
    size = (round(width * 0.7), round(height * 0.7))
    buffer = io.BytesIO()
    Image.fromarray(resize(rgb, size)).save(buffer, format="WEBP", quality=rng.randint(25, 45))
    image = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    return image, None if mask is None else resize_mask(mask, size)


def crop20(rgb, mask, rng):
    height, width = rgb.shape[:2]
    cut = rng.uniform(0.20, 0.25)
    keep_w, keep_h = round(width * (1 - cut) ** 0.5), round(height * (1 - cut) ** 0.5)
    x, y = rng.randint(0, width - keep_w), rng.randint(0, height - keep_h)
    crop = (slice(y, y + keep_h), slice(x, x + keep_w))
    return rgb[crop].copy(), None if mask is None else mask[crop].copy()


def third(rgb, mask, rng):
    height, width = rgb.shape[:2]
    size = (round(width / 3), round(height / 3))
    return resize(rgb, size), None if mask is None else resize_mask(mask, size)


TRANSFORM_FUNCTIONS = {
    "rotate": rotate,
    "perspective": perspective,
    "tone": tone,
    "grey": grey,
    "stretch": stretch,
    "stickers": stickers,
    "letterbox": letterbox,
    "webp": webp,
    "crop20": crop20,
    "third": third,
}


# ---- cases -------------------------------------------------------------------------------------


def source_cases(job: Job) -> list[dict]:
    """A source's 10 reposts (each transform alone) and 12 edits, each with one transform."""
    rng = random.Random(f"{SEED}-{job.source}")
    people = job.data / "people"
    photo = read_rgb(people / f"{job.source}.jpg")
    garment = np.asarray(Image.open(people / f"{job.source}_mask.png")) > 127
    head = head_mask(np.asarray(Image.open(job.data / "people_labels" / f"{job.source}.png")))
    plans = [(None, None, t) for t in TRANSFORMS] + [
        (edit, size, TRANSFORMS[(job.offset + i) % len(TRANSFORMS)])
        for i, (edit, size) in enumerate((e, s) for e in EDITS for s in SIZES)
    ]
    cases = []
    for edit, size, transform in plans:
        image, mask = photo, None
        if edit is not None:
            region = edit_region(garment, head, size)
            image, mask = apply_edit(photo, region, edit, rng), region.astype(np.uint8) * 255
        image, mask = TRANSFORM_FUNCTIONS[transform](image, mask, rng)
        case_id = f"{job.source}-{edit or 'repost'}-{round(size * 100) if size else 0}-{transform}"
        path = f"images/{case_id}.jpg"
        Image.fromarray(image).save(job.out / path, quality=rng.randint(75, 92))
        mask_path = None
        if mask is not None:
            mask_path = f"masks/{case_id}.png"
            Image.fromarray(mask).save(job.out / mask_path)
        cases.append(
            {
                "id": case_id,
                "path": path,
                "source": job.source,
                "source_path": str(people / f"{job.source}.jpg"),
                "registered": job.registered,
                "expected_kind": "repost" if edit is None else "manipulated",
                "edit": edit,
                "target_fraction": size,
                "transform": transform,
                "mask": mask_path,
            }
        )
    return cases


def build(
    data: Path, out: Path, workers: int, sources: int = SOURCES, distractors: int = DISTRACTORS
) -> dict:
    """Write every case and manifest.json under ``out``; return the manifest."""
    data = data.resolve()
    rng = random.Random(SEED)
    people = sorted(p.stem for p in (data / "people").glob("[0-9][0-9][0-9][0-9].jpg"))
    chosen = sorted(rng.sample(people, sources))
    registered = set(rng.sample(chosen, sources // 2))
    others = sorted(rng.sample(sorted((data / "distractors").glob("*.jpg")), distractors))
    remove_previous(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    jobs = [Job(data, out, s, s in registered, i % len(TRANSFORMS)) for i, s in enumerate(chosen)]
    cases = run_jobs(source_cases, jobs, workers)
    return write_manifest(out, data, SEED, chosen, registered, cases, others)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("bench/out/unseen/cases"))
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    started = time.perf_counter()
    manifest = build(args.data, args.out, args.workers)
    print(
        f"{len(manifest['cases'])} cases from {len(manifest['sources'])} sources and "
        f"{len(manifest['distractors'])} distractors in {time.perf_counter() - started:.0f} s "
        f"-> {args.out}"
    )


if __name__ == "__main__":
    main()
