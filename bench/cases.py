"""Build the benchmark cases from ../shared/data, deterministically.

    python -m bench.cases --data ../shared/data --out bench/out/cases [--limit-sources N]

Sources are the 250 people photos; a seeded half is registered. Every source gives:

- 9 **reposts**: the photo through each post-transform alone;
- 12 **manipulated derivatives**: 4 harmless edits (inpaint, paste, blur, colour) x 3 region
  sizes (20%, 35%, 50% of the image), each followed by one post-transform, cycling through the
  9 with a seeded offset so every (edit, size) meets every transform about equally often.

The edit region grows from the clothing mask and never enters the head (see head_mask).
Post-transforms: none, jpeg (60-90), half, crop (up to 10% a side), flip,
text_watermark, tiled_watermark, screenshot (phone frame with UI text), collage (before/after
beside the source for derivatives; beside a distractor for reposts). Ground-truth masks are
carried through the same geometry into the case image's coordinates.

Nothing generated here is sexual: edits only blur, recolour, inpaint or paste landscape texture
over clothing of clothed photos.
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

SEED = 20261122
EDITS = ["inpaint", "paste", "blur", "colour"]
SIZES = [0.20, 0.35, 0.50]
TRANSFORMS = [
    "none",
    "jpeg",
    "half",
    "crop",
    "flip",
    "text_watermark",
    "tiled_watermark",
    "screenshot",
    "collage",
]
HEAD_LABELS = [15, 17, 19, 20, 41, 47]  # earrings, glasses, hair, hat, skin, sunglasses
SCENES = range(461, 601)  # distractors that are landscapes and objects: the pasted texture


@dataclass
class Placed:
    """An image and its ground-truth mask of altered pixels (None when nothing was altered)."""

    rgb: np.ndarray
    mask: np.ndarray | None


def read_rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def jpeg_round_trip(rgb: np.ndarray, quality: int) -> np.ndarray:
    _, data = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(data, cv2.IMREAD_COLOR)[:, :, ::-1].copy()


# ---- edit regions ----------------------------------------------------------------------------


def head_mask(labels: np.ndarray) -> np.ndarray:
    """The head, which a nudify derivative keeps: never edited here.

    Hair, skin, glasses, earrings and hats in the top fifth of the person's height (the label
    map's non-background rows), with a margin. Hair alone is not enough: tied-back hair leaves
    the whole face unlabelled as hair.
    """
    rows = np.nonzero((labels > 0).any(axis=1))[0]
    if len(rows) == 0:
        return np.zeros(labels.shape, bool)
    top, height = rows[0], rows[-1] - rows[0] + 1
    zone = np.zeros(labels.shape, bool)
    zone[top : top + max(1, height // 5)] = True
    head = np.isin(labels, HEAD_LABELS) & zone
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (21, 21))
    return cv2.dilate(head.astype(np.uint8), kernel) > 0


def grow_region(garment: np.ndarray, head: np.ndarray, target: float) -> np.ndarray:
    """Grow the garment mask outside the head until it covers ``target`` of the image."""
    region = garment & ~head
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))
    allowed = ~head
    while region.mean() < target:
        grown = (cv2.dilate(region.astype(np.uint8), kernel) > 0) & allowed
        if grown.sum() == region.sum():
            if allowed.all():
                break
            allowed = np.ones_like(allowed)  # stalled outside the head: the head may go too
            continue
        region = grown
    return region


def feather(region: np.ndarray) -> np.ndarray:
    """A soft alpha for the region, so the seam of an edit looks like a real one."""
    return cv2.GaussianBlur(region.astype(np.float32), (0, 0), 2.0)[:, :, None]


# ---- edits -------------------------------------------------------------------------------------


def edit(
    rgb: np.ndarray, region: np.ndarray, kind: str, rng: random.Random, data: Path
) -> np.ndarray:
    if kind == "inpaint":
        height, width = region.shape
        small = cv2.resize(rgb, (width // 2, height // 2), interpolation=cv2.INTER_AREA)
        small_mask = cv2.resize(region.astype(np.uint8), (width // 2, height // 2)) > 0
        small_mask = cv2.dilate(small_mask.astype(np.uint8), np.ones((5, 5), np.uint8))
        method = cv2.INPAINT_TELEA if rng.random() < 0.5 else cv2.INPAINT_NS
        fill = cv2.resize(cv2.inpaint(small, small_mask, 5, method), (width, height))
    elif kind == "paste":
        scene = read_rgb(data / "distractors" / f"{rng.choice(SCENES):04d}.jpg")
        height, width = region.shape
        fill = cv2.resize(scene, (width, height), interpolation=cv2.INTER_LINEAR)
    elif kind == "blur":
        fill = cv2.GaussianBlur(rgb, (0, 0), rng.uniform(8, 15))
    else:
        hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV).astype(np.int32)
        hsv[:, :, 0] = (hsv[:, :, 0] + rng.randint(30, 90)) % 180  # 60-180 degrees
        hsv[:, :, 1] = np.clip(hsv[:, :, 1] * rng.uniform(1.3, 2.0) + 40, 0, 255)
        hsv[:, :, 2] = np.clip(hsv[:, :, 2] * rng.uniform(0.7, 1.3), 0, 255)
        fill = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)
    alpha = feather(region)
    return (rgb * (1 - alpha) + fill * alpha).round().astype(np.uint8)


# ---- post-transforms ---------------------------------------------------------------------------


def font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def draw_text_watermark(rgb: np.ndarray, rng: random.Random) -> np.ndarray:
    image = Image.fromarray(rgb).convert("RGBA")
    layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    width, height = image.size
    size = rng.randint(height // 30, height // 14)
    y = rng.randint(0, height - 3 * size)
    for _ in range(rng.randint(1, 2)):
        text = rng.choice(["@leaks_channel", "t.me/hotpics", "sent by a friend", "exclusive 2024"])
        x = rng.randint(0, width // 3)
        draw.text((x, y), text, font=font(size), fill=(255, 255, 255, rng.randint(150, 230)))
        y += size + 4
    return np.asarray(Image.alpha_composite(image, layer).convert("RGB"))


def draw_tiled_watermark(rgb: np.ndarray, rng: random.Random) -> np.ndarray:
    image = Image.fromarray(rgb).convert("RGBA")
    width, height = image.size
    tile = Image.new("RGBA", (width * 2, height * 2), (0, 0, 0, 0))
    draw = ImageDraw.Draw(tile)
    size = max(12, height // 25)
    opacity = int(255 * rng.uniform(0.20, 0.35))
    text = rng.choice(["PREVIEW", "@channel", "SAMPLE"])
    for y in range(0, height * 2, size * 4):
        for x in range((y // (size * 4)) % 2 * size * 3, width * 2, size * 8):
            draw.text((x, y), text, font=font(size), fill=(255, 255, 255, opacity))
    tile = tile.rotate(rng.uniform(20, 40), resample=Image.BICUBIC)
    left, top = width // 2, height // 2
    layer = tile.crop((left, top, left + width, top + height))
    return np.asarray(Image.alpha_composite(image, layer).convert("RGB"))


def screenshot(placed: Placed, rng: random.Random) -> Placed:
    """The image inside a phone screenshot with a status bar, an app header and UI text."""
    canvas_w, canvas_h = rng.choice([(1080, 2340), (750, 1334)])
    height, width = placed.rgb.shape[:2]
    top = round(canvas_h * rng.uniform(0.12, 0.2))
    scale = min(canvas_w / width, (canvas_h - top - 160) / height)
    new_w, new_h = round(width * scale), round(height * scale)
    left = (canvas_w - new_w) // 2
    background = (rng.choice([250, 255, 18]),) * 3
    canvas = Image.new("RGB", (canvas_w, canvas_h), background)
    photo = cv2.resize(placed.rgb, (new_w, new_h), interpolation=cv2.INTER_AREA)
    canvas.paste(Image.fromarray(photo), (left, top))
    draw = ImageDraw.Draw(canvas)
    ink = (20, 20, 20) if background[0] > 128 else (235, 235, 235)
    unit = canvas_w // 30
    draw.text((unit, unit // 2), "9:41", font=font(unit), fill=ink)
    draw.text((canvas_w - 5 * unit, unit // 2), "5G 87%", font=font(unit), fill=ink)
    draw.text((unit, top - 3 * unit), "channel_name  ·  2h", font=font(unit + 8), fill=ink)
    below = top + new_h + unit
    draw.text((unit, below), f"{rng.randint(10, 999)} likes", font=font(unit), fill=ink)
    draw.text((unit, below + 2 * unit), "look what we found lol", font=font(unit), fill=ink)
    mask = None
    if placed.mask is not None:
        mask = np.zeros((canvas_h, canvas_w), np.uint8)
        resized = cv2.resize(placed.mask, (new_w, new_h), interpolation=cv2.INTER_NEAREST)
        mask[top : top + new_h, left : left + new_w] = resized
    return Placed(np.asarray(canvas), mask)


def collage(left: Placed, right: Placed, rng: random.Random) -> Placed:
    """Two images side by side on a white strip, scaled so the longer side is about 1024."""
    height = min(left.rgb.shape[0], right.rgb.shape[0])
    offset, gap = 0, 16
    pieces = []
    for part in (left, right):
        scale = height / part.rgb.shape[0]
        width = round(part.rgb.shape[1] * scale)
        rgb = cv2.resize(part.rgb, (width, height), interpolation=cv2.INTER_AREA)
        mask = None
        if part.mask is not None:
            mask = cv2.resize(part.mask, (width, height), interpolation=cv2.INTER_NEAREST)
        pieces.append((rgb, mask, offset))
        offset += width + gap
    canvas = np.full((height + 2 * gap, offset + gap, 3), 255, np.uint8)
    truth = np.zeros(canvas.shape[:2], np.uint8)
    for rgb, mask, x in pieces:
        canvas[gap : gap + height, gap + x : gap + x + rgb.shape[1]] = rgb
        if mask is not None:
            truth[gap : gap + height, gap + x : gap + x + rgb.shape[1]] = mask
    if rng.random() < 0.5:
        image = Image.fromarray(canvas)
        draw = ImageDraw.Draw(image)
        label_font = font(max(14, height // 20))
        for (_, _, x), word in zip(pieces, ("before", "after"), strict=True):
            draw.text((gap + x + 10, gap + 10), word, font=label_font, fill=(255, 0, 0))
        canvas = np.asarray(image)
    scale = 1024 / max(canvas.shape[:2])
    size = (round(canvas.shape[1] * scale), round(canvas.shape[0] * scale))
    canvas = cv2.resize(canvas, size, interpolation=cv2.INTER_AREA)
    truth = cv2.resize(truth, size, interpolation=cv2.INTER_NEAREST)
    return Placed(canvas, truth if truth.any() else None)


def post_transform(
    placed: Placed, name: str, rng: random.Random, source: np.ndarray, partner: np.ndarray
) -> tuple[Placed, int]:
    """Apply one post-transform; return the result and the JPEG quality to save it with."""
    rgb, mask = placed.rgb, placed.mask
    height, width = rgb.shape[:2]
    quality = rng.randint(75, 95)
    if name == "jpeg":
        quality = rng.randint(60, 90)
    elif name == "half":
        size = (width // 2, height // 2)
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        mask = None if mask is None else cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)
        placed = Placed(rgb, mask)
    elif name == "crop":
        left, right = (round(width * rng.uniform(0, 0.1)) for _ in range(2))
        top, bottom = (round(height * rng.uniform(0, 0.1)) for _ in range(2))
        rgb = rgb[top : height - bottom, left : width - right]
        mask = None if mask is None else mask[top : height - bottom, left : width - right]
        placed = Placed(rgb.copy(), None if mask is None else mask.copy())
    elif name == "flip":
        placed = Placed(rgb[:, ::-1].copy(), None if mask is None else mask[:, ::-1].copy())
    elif name == "text_watermark":
        placed = Placed(draw_text_watermark(rgb, rng), mask)
    elif name == "tiled_watermark":
        placed = Placed(draw_tiled_watermark(rgb, rng), mask)
    elif name == "screenshot":
        placed = screenshot(placed, rng)
    elif name == "collage":
        beside = Placed(source if placed.mask is not None else partner, None)
        pair = (beside, placed) if rng.random() < 0.5 else (placed, beside)
        placed = collage(*pair, rng)
    return placed, quality


# ---- cases ---------------------------------------------------------------------------------------


def source_cases(job: tuple) -> list[dict]:
    """Every case of one source, written to disk; returns their manifest entries."""
    data, out, source_id, registered, seed, partner_path = job
    rng = random.Random(f"{seed}-{source_id}")
    photo = read_rgb(data / "people" / f"{source_id}.jpg")
    garment = np.asarray(Image.open(data / "people" / f"{source_id}_mask.png")) > 127
    labels = np.asarray(Image.open(data / "people_labels" / f"{source_id}.png"))
    head = head_mask(labels)
    partner = read_rgb(Path(partner_path))
    plans = [(None, None, t) for t in TRANSFORMS]
    offset = rng.randrange(len(TRANSFORMS))
    for i, (kind, size) in enumerate((k, s) for k in EDITS for s in SIZES):
        plans.append((kind, size, TRANSFORMS[(offset + i) % len(TRANSFORMS)]))
    entries = []
    regions = {size: grow_region(garment, head, size) for size in SIZES}
    for kind, size, transform in plans:
        if kind is None:
            placed = Placed(photo, None)
        else:
            region = regions[size]
            edited = edit(photo, region, kind, rng, data)
            placed = Placed(edited, region.astype(np.uint8) * 255)
        placed, quality = post_transform(placed, transform, rng, photo, partner)
        case_id = f"{source_id}-{kind or 'repost'}-{int(size * 100) if size else 0}-{transform}"
        image_path = out / "images" / f"{case_id}.jpg"
        Image.fromarray(placed.rgb).save(image_path, quality=quality)
        mask_path = None
        if placed.mask is not None:
            mask_path = out / "masks" / f"{case_id}.png"
            Image.fromarray(placed.mask).save(mask_path)
        entries.append(
            {
                "id": case_id,
                "path": str(image_path.relative_to(out)),
                "source": source_id,
                "source_path": str(data / "people" / f"{source_id}.jpg"),
                "registered": registered,
                "expected_kind": "repost" if kind is None else "manipulated",
                "edit": kind,
                "target_fraction": size,
                "region_fraction": float(regions[size].mean()) if kind else None,
                "transform": transform,
                "mask": None if mask_path is None else str(mask_path.relative_to(out)),
            }
        )
    return entries


def build(data: Path, out: Path, seed: int, limit_sources: int | None, workers: int) -> dict:
    data = data.resolve()
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    source_ids = sorted(p.stem for p in (data / "people").glob("[0-9][0-9][0-9][0-9].jpg"))
    source_ids = source_ids[:limit_sources] if limit_sources else source_ids
    rng = random.Random(seed)
    registered = set(rng.sample(source_ids, len(source_ids) // 2))
    distractors = sorted(str(p) for p in (data / "distractors").glob("*.jpg"))
    people_distractors = distractors[:460]
    jobs = [
        (data, out, s, s in registered, seed, rng.choice(people_distractors)) for s in source_ids
    ]
    with Pool(workers) as pool:
        cases = [entry for entries in pool.map(source_cases, jobs) for entry in entries]
    manifest = {
        "seed": seed,
        "data": str(data),
        "sources": [
            {"id": s, "path": str(data / "people" / f"{s}.jpg"), "registered": s in registered}
            for s in source_ids
        ],
        "cases": cases,
        "distractors": distractors if not limit_sources else distractors[: limit_sources * 2],
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("bench/out/cases"))
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--limit-sources", type=int, default=None)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    manifest = build(args.data, args.out, args.seed, args.limit_sources, args.workers)
    print(
        f"{len(manifest['cases'])} cases from {len(manifest['sources'])} sources, "
        f"{len(manifest['distractors'])} distractors -> {args.out}"
    )


if __name__ == "__main__":
    main()
