"""Cases for what the independent sets found hard, in bench/cases.py's manifest format.

    python -m bench.stress --data ../shared/data --out bench/out/stress/cases
    python -m bench.accuracy --cases bench/out/stress/cases --name stress

Issue 16 lists where counterfake failed on photos and edits nobody had tuned it to. This builder
makes those situations from the people photos, with its own seed and its own registered half,
so that each has a row of its own (the ``transform`` field names the situation):

- ``large``: 60% of the image regenerated (the region grown from the clothing mask, never the
  head): a smooth fill of the person's own skin tone with grain (the issue's worst fill), an
  inpainting, or pasted texture;
- ``small``: 5% or 8% of the image edited (inpainting, colour, pasted texture), which must be
  called manipulated and masked, not a repost;
- ``curves``: a photometric curve (gamma 0.5-0.7 or 1.5-2.0, or an S-shaped tone curve), on a
  repost and on a 35% derivative;
- ``grid``: the photo as one tile of a 2x2 grid beside three distractors, longer side 768-1024;
- ``chain``: two post-processing operations in a row on a 35% derivative (rotation then a crop,
  a caption bar then a harsh JPEG, a halving then a curve, a mirror then WebP).

Nothing here chooses a threshold: the rows are read, never tuned to. Nothing generated is
sexual: every edit fills the clothing region of a clothed photo with something harmless.
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
    SKIN,
    apply_edit,
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
from bench.unseen import rotate

SEED = 20261208
SOURCES = 120  # people photos used; a seeded half registered
DISTRACTORS = 150
SCENES = range(461, 601)  # distractors whose texture is pasted (bench/cases.py's donors)

Op = tuple[np.ndarray, np.ndarray | None]


def skin_fill(rgb: np.ndarray, labels: np.ndarray, rng: random.Random) -> np.ndarray:
    """A smooth field of the person's own skin tone with grain: a featureless regeneration."""
    skin = labels == SKIN
    colour = rgb[skin].mean(axis=0) if skin.sum() > 50 else np.array([200.0, 160.0, 140.0])
    height, width = rgb.shape[:2]
    noise = np.random.default_rng(rng.randrange(2**32))
    shading = cv2.GaussianBlur(noise.normal(0, 1, (height, width)), (0, 0), width / 8)
    shading = shading / max(float(np.abs(shading).max()), 1e-6)
    field = colour[None, None, :] * (1.0 + 0.12 * shading[:, :, None])
    return np.clip(field + noise.normal(0, 3, rgb.shape), 0, 255)


def edited(
    photo: np.ndarray,
    region: np.ndarray,
    edit: str,
    labels: np.ndarray,
    rng: random.Random,
    donors: list[Path],
) -> Op:
    """The photo with one harmless edit over the region, and the ground-truth mask."""
    if edit == "skin":
        alpha = feather_alpha(region, rng.uniform(3, 6))
        fill = skin_fill(photo, labels, rng)
        image = (photo * (1 - alpha) + fill * alpha).round().astype(np.uint8)
    else:
        image, _ = apply_edit(photo, region, edit, rng, donors)
    return image, region.astype(np.uint8) * 255


def curve(rgb: np.ndarray, mask: np.ndarray | None, rng: random.Random) -> Op:
    """Gamma 0.5-0.7 or 1.5-2.0, or an S-shaped tone curve, as an app's filter applies one."""
    levels = np.arange(256) / 255.0
    if rng.random() < 2 / 3:
        gamma = rng.uniform(0.5, 0.7) if rng.random() < 0.5 else rng.uniform(1.5, 2.0)
        table = levels**gamma
    else:
        strength = rng.uniform(4, 8)
        table = 1 / (1 + np.exp(-strength * (levels - 0.5)))
        table = (table - table[0]) / (table[-1] - table[0])
    return cv2.LUT(rgb, (table * 255).round().astype(np.uint8)), mask


def grid(rgb: np.ndarray, mask: np.ndarray | None, rng: random.Random, others: list[Path]) -> Op:
    """The photo as one tile of a 2x2 grid of equal cells beside three unrelated photos."""
    side = rng.randint(768, 1024)
    cell = side // 2
    canvas = np.full((side, side, 3), 255, np.uint8)
    truth = None if mask is None else np.zeros((side, side), np.uint8)
    slot = rng.randrange(4)
    for index in range(4):
        tile = rgb if index == slot else read_rgb(rng.choice(others))
        scale = min(cell / tile.shape[1], cell / tile.shape[0])
        size = (max(1, round(tile.shape[1] * scale)), max(1, round(tile.shape[0] * scale)))
        x = (index % 2) * cell + (cell - size[0]) // 2
        y = (index // 2) * cell + (cell - size[1]) // 2
        canvas[y : y + size[1], x : x + size[0]] = resize(tile, size)
        if index == slot and truth is not None and mask is not None:
            truth[y : y + size[1], x : x + size[0]] = resize_mask(mask, size)
    return canvas, truth


def crop(rgb: np.ndarray, mask: np.ndarray | None, rng: random.Random) -> Op:
    """10-20% of the area cut away, off-centre."""
    height, width = rgb.shape[:2]
    keep = (1 - rng.uniform(0.10, 0.20)) ** 0.5
    keep_w, keep_h = round(width * keep), round(height * keep)
    x, y = rng.randint(0, width - keep_w), rng.randint(0, height - keep_h)
    box = (slice(y, y + keep_h), slice(x, x + keep_w))
    return rgb[box].copy(), None if mask is None else mask[box].copy()


def caption_bar(rgb: np.ndarray, mask: np.ndarray | None, rng: random.Random) -> Op:
    """A white bar with a line of text added above the photo, as meme apps do."""
    height, width = rgb.shape[:2]
    bar = max(24, height // 8)
    layer = Image.new("RGB", (width, height + bar), "white")
    layer.paste(Image.fromarray(rgb), (0, bar))
    size = max(12, bar // 2)
    ImageDraw.Draw(layer).text(
        (size // 2, bar // 4), "guess who", font=font(rng, size), fill="black"
    )
    if mask is None:
        return np.asarray(layer), None
    return np.asarray(layer), np.vstack([np.zeros((bar, width), np.uint8), mask])


def jpeg(rgb: np.ndarray, mask: np.ndarray | None, rng: random.Random) -> Op:
    """A harsh JPEG save (quality 35-55)."""
    return _encoded(rgb, "JPEG", rng.randint(35, 55)), mask


def webp(rgb: np.ndarray, mask: np.ndarray | None, rng: random.Random) -> Op:
    """WebP at quality 30-50."""
    return _encoded(rgb, "WEBP", rng.randint(30, 50)), mask


def half(rgb: np.ndarray, mask: np.ndarray | None, rng: random.Random) -> Op:
    size = (rgb.shape[1] // 2, rgb.shape[0] // 2)
    return resize(rgb, size), None if mask is None else resize_mask(mask, size)


def mirror(rgb: np.ndarray, mask: np.ndarray | None, rng: random.Random) -> Op:
    return rgb[:, ::-1].copy(), None if mask is None else mask[:, ::-1].copy()


def _encoded(rgb: np.ndarray, file_format: str, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format=file_format, quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


CHAINS = {
    "rotate+crop": (rotate, crop),
    "caption+jpeg": (caption_bar, jpeg),
    "half+curve": (half, curve),
    "mirror+webp": (mirror, webp),
}


@dataclass(frozen=True)
class Job:
    data: Path
    out: Path
    source: str
    registered: bool
    others: tuple[Path, ...]


def plans(rng: random.Random) -> list[tuple[str | None, float | None, str, str]]:
    """(edit, size, situation, detail) of one source's 13 cases."""
    chains = list(CHAINS)
    rng.shuffle(chains)
    return [
        ("skin", 0.60, "large", ""),
        ("inpaint", 0.60, "large", ""),
        ("paste", 0.60, "large", ""),
        ("inpaint", 0.05, "small", ""),
        ("colour", 0.08, "small", ""),
        ("paste", rng.choice((0.05, 0.08)), "small", ""),
        (None, None, "curves", ""),
        ("inpaint", 0.35, "curves", ""),
        (None, None, "grid", ""),
        (rng.choice(("inpaint", "paste", "colour")), 0.35, "grid", ""),
        *[(rng.choice(("inpaint", "paste", "blur")), 0.35, "chain", c) for c in chains[:3]],
    ]


def source_cases(job: Job) -> list[dict]:
    """A source's 13 cases, written to disk; their manifest entries."""
    rng = random.Random(f"{SEED}-{job.source}")
    people = job.data / "people"
    photo = read_rgb(people / f"{job.source}.jpg")
    garment = np.asarray(Image.open(people / f"{job.source}_mask.png")) > 127
    labels = np.asarray(Image.open(job.data / "people_labels" / f"{job.source}.png"))
    head = head_mask(labels)
    donors = [p for p in job.others if int(p.stem) in SCENES] or list(job.others)
    cases = []
    for edit, size, situation, detail in plans(rng):
        image, mask = photo, None
        if edit is not None and size is not None:
            region = edit_region(garment, head, size)
            image, mask = edited(photo, region, edit, labels, rng, donors)
        if situation == "curves":
            image, mask = curve(image, mask, rng)
        elif situation == "grid":
            image, mask = grid(image, mask, rng, list(job.others))
        elif situation == "chain":
            for op in CHAINS[detail]:
                image, mask = op(image, mask, rng)
        name = situation + (f"-{detail}" if detail else "")
        case_id = f"{job.source}-{edit or 'repost'}-{round(size * 100) if size else 0}-{name}"
        path = f"images/{case_id}.jpg"
        Image.fromarray(image).save(job.out / path, quality=rng.randint(80, 92))
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
                "transform": name if situation == "chain" else situation,
                "mask": mask_path,
            }
        )
    return cases


def build(data: Path, out: Path, workers: int) -> dict:
    """Write every case and manifest.json under ``out``; return the manifest."""
    data = data.resolve()
    rng = random.Random(SEED)
    people = sorted(p.stem for p in (data / "people").glob("[0-9][0-9][0-9][0-9].jpg"))
    chosen = sorted(rng.sample(people, SOURCES))
    registered = set(rng.sample(chosen, SOURCES // 2))
    others = tuple(sorted(rng.sample(sorted((data / "distractors").glob("*.jpg")), DISTRACTORS)))
    remove_previous(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    jobs = [Job(data, out, s, s in registered, others) for s in chosen]
    cases = run_jobs(source_cases, jobs, workers)
    return write_manifest(out, data, SEED, chosen, registered, cases, list(others))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("bench/out/stress/cases"))
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
