"""Build the benchmark cases from ../shared/data, deterministically.

    python -m bench.cases --data ../shared/data --out bench/out/cases [--limit-sources N] [--seed S]

Sources are the 250 people photos; a seeded half is registered, and everything made from the
other half is a negative, like the 600 distractors. Every source gives 21 cases:

- 9 **reposts**: the photo through each post-transform alone;
- 12 **manipulated derivatives**: 4 harmless edits (inpaint, paste, blur, colour) x 3 region
  sizes (20%, 35%, 50% of the image), each followed by one post-transform. The transform cycles
  with a seeded per-source offset, balanced within the registered and the unregistered half, so
  every (edit, size) meets every transform equally often, give or take one.

The edit region grows from the clothing mask and never enters the head (see head_mask). The
ground-truth mask and the photo's place (photo_box, photo_quad) follow every resize, crop, flip
and placement into the coordinates of the saved case image. Each source draws from its own
random stream, so a source's cases are the same whatever --limit-sources is, and the same seed
gives byte-identical files on the same machine (fonts and codecs may differ elsewhere).

Nothing generated here is sexual: edits only inpaint, paste landscape texture, blur or recolour
the clothing region of clothed photos. The shared data are read in place, never copied.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import random
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

SEED = 20261122
EDITS = ("inpaint", "paste", "blur", "colour")
SIZES = (0.20, 0.35, 0.50)
TRANSFORMS = (
    "none",
    "jpeg",
    "half",
    "crop",
    "flip",
    "text_watermark",
    "tiled_watermark",
    "screenshot",
    "collage",
)
HAIR, SKIN = 19, 41
HEADWEAR = (15, 17, 20, 47)  # earrings, glasses, hat, sunglasses
HEAD_MARGIN = 8  # pixels kept between the edit region and the head
SCENES = range(461, 601)  # BSDS500 distractors (landscapes, objects): the pasted texture
PHONES = ((1080, 2340), (750, 1334))
COLLAGE_SIDE = 1024
HANDLES = ("photo_dump", "city.looks", "daily_reposts", "street_archive", "pics_of_today")
CAPTIONS = (
    "found this on another channel",
    "who is this?",
    "repost from the group chat",
    "spotted downtown",
    "saving this one",
)
WATERMARKS = (
    "@daily_reposts",
    "t.me/photo_dump",
    "via @street_archive",
    "reposted",
    "@pics_of_today",
)
# A 3x3 cross, then a 3x3 square: alternated, one-pixel steps grow an octagon, close to a disc.
RING_KERNELS = (cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3)), np.ones((3, 3), np.uint8))


@dataclass(frozen=True)
class Placed:
    """An image, its ground truth, and where the source photo lies in it.

    ``mask`` is 255 where pixels were altered (None for a repost). ``to_image`` maps source-photo
    coordinates (pixel corners: the photo spans [0, w] x [0, h]) into this image; ``original``
    does the same for the unedited copy beside the edited one in a before/after collage.
    ``beside`` is the unrelated photo put beside a repost in a collage: the case holds it too.
    """

    rgb: np.ndarray
    mask: np.ndarray | None
    to_image: np.ndarray
    original: np.ndarray | None = None
    beside: Path | None = None


@dataclass(frozen=True)
class SourceJob:
    """Everything a worker process needs to build one source's cases."""

    data: Path
    out: Path
    source: str
    registered: bool
    offset: int
    seed: int
    distractors: tuple[Path, ...]


def read_rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


# ---- edit regions ----------------------------------------------------------------------------


def head_mask(labels: np.ndarray) -> np.ndarray:
    """The head, which a nudify derivative keeps and the benchmark therefore never edits.

    Hair and head-worn items (earrings, glasses, hat, sunglasses), plus the skin above the lowest
    of them: the face. Short, tied-back or hat-covered hair can end above the chin (15 of the 250
    photos have no hair label at all), so the face zone always reaches at least a sixth of the
    person's height below the top of the person; a standing adult is about seven heads tall.
    A margin keeps the feathered seam off the face.
    """
    person_rows = np.flatnonzero((labels > 0).any(axis=1))
    if person_rows.size == 0:
        return np.zeros(labels.shape, bool)
    top = person_rows[0]
    worn = np.isin(labels, (HAIR, *HEADWEAR))
    worn_rows = np.flatnonzero(worn.any(axis=1))
    bottom = top + (person_rows[-1] - top + 1) // 6
    if worn_rows.size:
        bottom = max(bottom, worn_rows[-1])
    face = labels == SKIN
    face[bottom + 1 :] = False
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * HEAD_MARGIN + 1,) * 2)
    return cv2.dilate((worn | face).astype(np.uint8), kernel) > 0


def grow_region(region: np.ndarray, allowed: np.ndarray, target: float) -> np.ndarray:
    """Grow the region inside ``allowed``, one pixel ring at a time, until it covers ``target``.

    The growth is geodesic: it spreads only through allowed pixels, so it flows around the head
    rather than across it. One-pixel rings overshoot the target by well under 1% of the image.
    Returns early, short of the target, when the reachable allowed pixels are all taken.
    """
    step = 0
    while region.mean() < target:
        grown = (cv2.dilate(region.astype(np.uint8), RING_KERNELS[step % 2]) > 0) & allowed
        if grown.sum() == region.sum():
            break
        region, step = grown, step + 1
    return region


def fill_nearest(region: np.ndarray, allowed: np.ndarray, target: float) -> np.ndarray:
    """Top a stalled region up to ``target`` with the allowed pixels nearest to it, anywhere.

    Growth stalls when the head walls off the rest of the image; what is left outside the head
    is then taken nearest first (a stable sort, so the result is deterministic).
    """
    need = round(target * region.size) - int(region.sum())
    if need <= 0:
        return region
    distance = cv2.distanceTransform((~region).astype(np.uint8), cv2.DIST_L2, 5).ravel()
    candidates = np.flatnonzero(allowed & ~region)
    nearest = candidates[np.argsort(distance[candidates], kind="stable")[:need]]
    filled = region.ravel().copy()
    filled[nearest] = True
    return filled.reshape(region.shape)


def shrink_region(region: np.ndarray, target: float) -> np.ndarray:
    """Erode a garment mask that already covers more than ``target``, one ring at a time."""
    step = 0
    while region.mean() > target:
        region, step = cv2.erode(region.astype(np.uint8), RING_KERNELS[step % 2]) > 0, step + 1
    return region


def edit_region(garment: np.ndarray, head: np.ndarray, target: float) -> np.ndarray:
    """The region an edit replaces: the garment, grown or shrunk to ``target``, never the head."""
    region = garment & ~head
    if region.mean() > target:
        return shrink_region(region, target)
    return fill_nearest(grow_region(region, ~head, target), ~head, target)


# ---- edits -------------------------------------------------------------------------------------


def feather_alpha(region: np.ndarray, width: float) -> np.ndarray:
    """The edit's opacity: 0 outside, rising to 1 over ``width`` pixels inside the edge.

    The seam is soft, like a real one, yet every altered pixel stays inside the ground truth.
    """
    distance = cv2.distanceTransform(region.astype(np.uint8), cv2.DIST_L2, 5)
    return np.clip(distance / width, 0, 1)[:, :, None]


def inpaint_fill(rgb: np.ndarray, region: np.ndarray, rng: random.Random) -> np.ndarray:
    """Fill the region from its surroundings (Telea or Navier-Stokes, radius 5).

    Done at half size and scaled back: four times faster over half an image, and an inpainted
    fill is smooth anyway.
    """
    height, width = region.shape
    small = cv2.resize(rgb, (width // 2, height // 2), interpolation=cv2.INTER_AREA)
    hole = cv2.resize(
        region.astype(np.uint8), (width // 2, height // 2), interpolation=cv2.INTER_NEAREST
    )
    hole = cv2.dilate(hole, RING_KERNELS[1])  # cover the edge pixels lost to the halving
    method = rng.choice((cv2.INPAINT_TELEA, cv2.INPAINT_NS))
    fill = cv2.inpaint(small, hole, 5, method)
    return cv2.resize(fill, (width, height), interpolation=cv2.INTER_LINEAR)


def paste_fill(
    rgb: np.ndarray, region: np.ndarray, rng: random.Random, scenes: list[Path]
) -> tuple[np.ndarray, Path]:
    """Texture from a random scene photo, scaled (keeping its shape) to cover the region's box.

    Returns the fill and the scene photo it came from: that photo is a distractor of the
    benchmark too, and the derivative genuinely holds part of it (a "donor" relation).
    """
    ys, xs = np.nonzero(region)
    x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    donor = rng.choice(scenes)
    scene = read_rgb(donor)
    scale = max((x1 - x0) / scene.shape[1], (y1 - y0) / scene.shape[0]) * rng.uniform(1.0, 1.4)
    size = (
        max(x1 - x0, round(scene.shape[1] * scale)),
        max(y1 - y0, round(scene.shape[0] * scale)),
    )
    scene = cv2.resize(scene, size, interpolation=cv2.INTER_LINEAR)
    left = rng.randint(0, size[0] - (x1 - x0))
    top = rng.randint(0, size[1] - (y1 - y0))
    fill = rgb.copy()
    fill[y0:y1, x0:x1] = scene[top : top + y1 - y0, left : left + x1 - x0]
    return fill, donor


def colour_fill(rgb: np.ndarray, rng: random.Random) -> np.ndarray:
    """Hue turned by 60-180 degrees either way, saturation and brightness changed, in Lab.

    Turning the (a, b) chroma plane rather than HSV hue leaves no speckle on near-grey pixels,
    whose HSV hue is noise; a light tint gives grey and black garments a colour too.
    """
    lab = cv2.cvtColor(rgb.astype(np.float32) / 255, cv2.COLOR_RGB2Lab)
    turn = np.radians(rng.uniform(60, 180) * rng.choice((-1, 1)))
    saturation, tint_angle = rng.uniform(1.0, 1.6), rng.uniform(0, 2 * np.pi)
    tint = rng.uniform(10, 30) * np.array([np.cos(tint_angle), np.sin(tint_angle)])
    rotation = saturation * np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    lab[:, :, 1:] = lab[:, :, 1:] @ rotation.T.astype(np.float32) + tint.astype(np.float32)
    lab[:, :, 0] = np.clip(lab[:, :, 0] * rng.uniform(0.75, 1.25), 0, 100)
    turned = cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)
    return (np.clip(turned, 0, 1) * 255).round().astype(np.uint8)


def apply_edit(
    rgb: np.ndarray, region: np.ndarray, edit: str, rng: random.Random, scenes: list[Path]
) -> tuple[np.ndarray, Path | None]:
    """The photo with one harmless edit blended into the region through a feathered edge, and
    the photo whose texture was pasted in (None for the other edits)."""
    donor = None
    if edit == "inpaint":
        fill = inpaint_fill(rgb, region, rng)
    elif edit == "paste":
        fill, donor = paste_fill(rgb, region, rng, scenes)
    elif edit == "blur":
        fill = cv2.GaussianBlur(rgb, (0, 0), rng.uniform(8, 15))
    else:
        fill = colour_fill(rgb, rng)
    alpha = feather_alpha(region, rng.uniform(3, 6))
    return (rgb * (1 - alpha) + fill * alpha).round().astype(np.uint8), donor


# ---- geometry ----------------------------------------------------------------------------------


def scaling(sx: float, sy: float) -> np.ndarray:
    return np.diag([sx, sy, 1.0])


def shift(dx: float, dy: float) -> np.ndarray:
    matrix = np.eye(3)
    matrix[:2, 2] = dx, dy
    return matrix


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area averaging to shrink, as photo apps do; bilinear to enlarge."""
    shrinking = size[0] < image.shape[1]
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resample a 0/255 mask exactly as its image, then threshold at half so it stays binary."""
    return np.where(resize(mask, size) >= 128, 255, 0).astype(np.uint8)


def resized(placed: Placed, size: tuple[int, int]) -> Placed:
    height, width = placed.rgb.shape[:2]
    scale = scaling(size[0] / width, size[1] / height)
    return Placed(
        resize(placed.rgb, size),
        None if placed.mask is None else resize_mask(placed.mask, size),
        scale @ placed.to_image,
        None if placed.original is None else scale @ placed.original,
    )


def cropped(placed: Placed, box: tuple[int, int, int, int]) -> Placed:
    x0, y0, x1, y1 = box
    mask = None if placed.mask is None else placed.mask[y0:y1, x0:x1].copy()
    return Placed(placed.rgb[y0:y1, x0:x1].copy(), mask, shift(-x0, -y0) @ placed.to_image)


def flipped(placed: Placed) -> Placed:
    mirror = np.array([[-1.0, 0, placed.rgb.shape[1]], [0, 1, 0], [0, 0, 1]])
    mask = None if placed.mask is None else placed.mask[:, ::-1].copy()
    return Placed(placed.rgb[:, ::-1].copy(), mask, mirror @ placed.to_image)


def paste_onto(canvas: np.ndarray, truth: np.ndarray, piece: Placed, x: int, y: int) -> np.ndarray:
    """Paste a piece and its ground truth at (x, y), in place; return its photo-to-canvas map."""
    height, width = piece.rgb.shape[:2]
    canvas[y : y + height, x : x + width] = piece.rgb
    if piece.mask is not None:
        truth[y : y + height, x : x + width] = piece.mask
    return shift(x, y) @ piece.to_image


def photo_quad(matrix: np.ndarray, photo_shape: tuple[int, ...]) -> np.ndarray:
    """The source photo's corners (top-left, top-right, bottom-right, bottom-left) in the image."""
    height, width = photo_shape[:2]
    corners = np.array([[0, 0, 1], [width, 0, 1], [width, height, 1], [0, height, 1]], float)
    return (matrix @ corners.T)[:2].T


def visible_box(quad: np.ndarray, image_shape: tuple[int, ...]) -> list[int]:
    """[x0, y0, x1, y1] of the part of the quad inside the image."""
    height, width = image_shape[:2]
    x0, y0 = np.clip(quad.min(axis=0), 0, [width, height])
    x1, y1 = np.clip(quad.max(axis=0), 0, [width, height])
    return [round(x0), round(y0), round(x1), round(y1)]


# ---- post-transforms ---------------------------------------------------------------------------


@functools.cache
def font_files() -> tuple[str, ...]:
    """The TrueType fonts fontconfig knows, sorted so a seed picks the same one on every run."""
    try:
        listing = subprocess.run(
            ["fc-list", "--format", "%{file}\n"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return ()
    return tuple(sorted(p for p in listing.splitlines() if p.lower().endswith(".ttf")))


def font(rng: random.Random, size: int) -> ImageFont.FreeTypeFont:
    """A random installed TrueType font, or Pillow's built-in one where fontconfig has none."""
    files = font_files()
    return ImageFont.truetype(rng.choice(files), size) if files else ImageFont.load_default(size)


def overlay(rgb: np.ndarray, layer: Image.Image) -> np.ndarray:
    """Composite a transparent RGBA layer over the image."""
    return np.asarray(
        Image.alpha_composite(Image.fromarray(rgb).convert("RGBA"), layer).convert("RGB")
    )


def text_watermark(rgb: np.ndarray, rng: random.Random) -> np.ndarray:
    """One or two lines of semi-opaque text somewhere on the image, like a channel's tag."""
    height, width = rgb.shape[:2]
    size = rng.randint(max(12, height // 40), max(14, height // 14))
    face = font(rng, size)
    ink, edge = rng.choice((((255, 255, 255), (0, 0, 0)), ((0, 0, 0), (255, 255, 255))))
    opacity = rng.randint(120, 220)
    layer = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    x, y = rng.randint(0, width // 2), rng.randint(0, max(0, height - 3 * size))
    for line in rng.sample(WATERMARKS, rng.randint(1, 2)):
        draw.text(
            (x, y),
            line,
            font=face,
            fill=(*ink, opacity),
            stroke_width=1,
            stroke_fill=(*edge, opacity // 2),
        )
        y += round(size * 1.3)
    return overlay(rgb, layer)


def tiled_watermark(rgb: np.ndarray, rng: random.Random) -> np.ndarray:
    """Text repeated on a diagonal grid over the whole image at 20-35% opacity, like a preview."""
    height, width = rgb.shape[:2]
    size = rng.randint(max(12, height // 30), max(14, height // 16))
    face = font(rng, size)
    text = rng.choice(WATERMARKS)
    fill = (*rng.choice(((255, 255, 255), (0, 0, 0))), round(255 * rng.uniform(0.20, 0.35)))
    side = int(np.hypot(width, height)) + 1  # the layer still covers the image once turned
    layer = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    step_x, step_y = round(draw.textlength(text, font=face)) + 2 * size, 3 * size
    for row, y in enumerate(range(0, side, step_y)):
        for x in range(-(row % 2) * step_x // 2, side, step_x):
            draw.text((x, y), text, font=face, fill=fill)
    layer = layer.rotate(rng.uniform(25, 45) * rng.choice((-1, 1)), resample=Image.BILINEAR)
    left, top = (side - width) // 2, (side - height) // 2
    return overlay(rgb, layer.crop((left, top, left + width, top + height)))


def crop_box(width: int, height: int, rng: random.Random) -> tuple[int, int, int, int]:
    """Up to 10% off each side, so at least 80% of each dimension survives."""
    left, right = (round(width * rng.uniform(0, 0.1)) for _ in range(2))
    top, bottom = (round(height * rng.uniform(0, 0.1)) for _ in range(2))
    return left, top, width - right, height - bottom


def draw_phone_ui(canvas: Image.Image, photo_bottom: int, rng: random.Random) -> None:
    """Status bar, app header, likes, caption and a tab bar around the photo, never over it."""
    width, height = canvas.size
    unit = width // 27
    draw = ImageDraw.Draw(canvas)
    ink, faint = (20, 20, 20), (120, 120, 120)
    small, large = font(rng, unit), font(rng, round(unit * 1.2))
    handle = rng.choice(HANDLES)
    draw.text(
        (unit, unit // 2), f"{rng.randint(7, 23)}:{rng.randint(0, 59):02d}", font=small, fill=ink
    )
    draw.text((width - 6 * unit, unit // 2), f"5G {rng.randint(5, 99)}%", font=small, fill=ink)
    draw.ellipse((unit, 2.5 * unit, 3.5 * unit, 5 * unit), fill=(rng.randint(60, 200), 120, 160))
    draw.text((4.5 * unit, 3 * unit), f"{handle}  · {rng.randint(1, 23)}h", font=large, fill=ink)
    below = photo_bottom + unit // 2
    draw.text((unit, below), f"{rng.randint(12, 9999):,} likes", font=large, fill=ink)
    draw.text((unit, below + 2 * unit), f"{handle} {rng.choice(CAPTIONS)}", font=small, fill=ink)
    draw.text(
        (unit, below + 3.6 * unit),
        f"View all {rng.randint(2, 300)} comments",
        font=small,
        fill=faint,
    )
    draw.line((0, height - 3 * unit, width, height - 3 * unit), fill=(200, 200, 200), width=2)
    draw.text(
        (unit, height - 2.2 * unit), "Home    Search    +    Reels    Profile", font=small, fill=ink
    )


def screenshot(placed: Placed, rng: random.Random) -> Placed:
    """The image as a phone shows it in a feed, on a white or grey screen: the whole screen."""
    width, height = rng.choice(PHONES)
    unit = width // 27
    top, room_below = 6 * unit, 9 * unit
    photo_h, photo_w = placed.rgb.shape[:2]
    scale = min(width * rng.uniform(0.9, 1.0) / photo_w, (height - top - room_below) / photo_h)
    piece = resized(placed, (round(photo_w * scale), round(photo_h * scale)))
    canvas = np.full((height, width, 3), rng.choice((255, 250, 244, 238)), np.uint8)
    truth = np.zeros((height, width), np.uint8)
    left = (width - piece.rgb.shape[1]) // 2
    to_image = paste_onto(canvas, truth, piece, left, top)
    screen = Image.fromarray(canvas)
    draw_phone_ui(screen, top + piece.rgb.shape[0], rng)
    return Placed(np.asarray(screen), None if placed.mask is None else truth, to_image)


def label_collage(
    canvas: np.ndarray, before: tuple[int, int], after: tuple[int, int], rng: random.Random
) -> np.ndarray:
    """Write "before" and "after" at the top-left corners (x, y) of the two photos."""
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    face = font(rng, max(14, canvas.shape[0] // 18))
    colour = rng.choice(((255, 255, 255), (230, 30, 30), (255, 220, 0)))
    for (x, y), word in ((before, "before"), (after, "after")):
        draw.text(
            (x + 10, y + 8), word, font=face, fill=colour, stroke_width=2, stroke_fill=(0, 0, 0)
        )
    return np.asarray(image)


def collage(
    subject: Placed, beside: np.ndarray, beside_is_original: bool, rng: random.Random
) -> Placed:
    """Two photos side by side with a border, as in before/after posts; longer side 1024.

    ``beside`` is the unedited source (a derivative's collage, which may carry before/after
    labels) or an unrelated photo (a repost's). Only the subject carries ground truth.
    """
    height = subject.rgb.shape[0]
    other = resized(
        Placed(beside, None, np.eye(3)), (round(beside.shape[1] * height / beside.shape[0]), height)
    )
    border = rng.randint(4, 24)
    subject_w, other_w = subject.rgb.shape[1], other.rgb.shape[1]
    if rng.random() < 0.5:
        subject_x, other_x = border, 2 * border + subject_w
    else:
        subject_x, other_x = 2 * border + other_w, border
    width = subject_w + other_w + 3 * border
    canvas = np.full((height + 2 * border, width, 3), rng.choice((255, 0, 32)), np.uint8)
    truth = np.zeros(canvas.shape[:2], np.uint8)
    subject_map = paste_onto(canvas, truth, subject, subject_x, border)
    other_map = paste_onto(canvas, truth, other, other_x, border)
    if beside_is_original and rng.random() < 0.6:
        canvas = label_collage(canvas, (other_x, border), (subject_x, border), rng)
    whole = Placed(
        canvas,
        None if subject.mask is None else truth,
        subject_map,
        other_map if beside_is_original else None,
    )
    scale = COLLAGE_SIDE / max(canvas.shape[:2])
    return resized(whole, (round(canvas.shape[1] * scale), round(canvas.shape[0] * scale)))


def post_transform(
    placed: Placed, name: str, rng: random.Random, photo: np.ndarray, distractors: tuple[Path, ...]
) -> Placed:
    """One geometric or compression change; 'none' and 'jpeg' act only through the final save."""
    height, width = placed.rgb.shape[:2]
    if name == "half":
        return resized(placed, (width // 2, height // 2))
    if name == "crop":
        return cropped(placed, crop_box(width, height, rng))
    if name == "flip":
        return flipped(placed)
    if name == "text_watermark":
        return replace(placed, rgb=text_watermark(placed.rgb, rng))
    if name == "tiled_watermark":
        return replace(placed, rgb=tiled_watermark(placed.rgb, rng))
    if name == "screenshot":
        return screenshot(placed, rng)
    if name == "collage":
        edited = placed.mask is not None
        partner = None if edited else rng.choice(distractors)
        beside = photo if partner is None else read_rgb(partner)
        return replace(collage(placed, beside, edited, rng), beside=partner)
    return placed


def choose_encoding(transform: str, rng: random.Random) -> tuple[str, int | None]:
    """The format and JPEG quality of the one save every case goes through, as a repost would.

    The jpeg transform is a harsher save; a screenshot is PNG or JPEG, as phones make them.
    """
    if transform == "jpeg":
        return "JPEG", rng.randint(60, 90)
    if transform == "screenshot" and rng.random() < 0.5:
        return "PNG", None
    return "JPEG", rng.randint(75, 95)


# ---- cases -------------------------------------------------------------------------------------


def case_plan(offset: int) -> list[tuple[str | None, float | None, str]]:
    """(edit, size, transform) of a source's 21 cases: 9 reposts, then 12 derivatives."""
    reposts = [(None, None, transform) for transform in TRANSFORMS]
    derivatives = [
        (edit, size, TRANSFORMS[(offset + i) % len(TRANSFORMS)])
        for i, (edit, size) in enumerate(itertools.product(EDITS, SIZES))
    ]
    return reposts + derivatives


def make_case(
    job: SourceJob,
    photo: np.ndarray,
    regions: dict[float, np.ndarray],
    plan: tuple[str | None, float | None, str],
    rng: random.Random,
) -> dict:
    """Build, save and describe one case."""
    edit, size, transform = plan
    placed = Placed(photo, None, np.eye(3))
    donor = None
    if edit is not None:
        scenes = [p for p in job.distractors if int(p.stem) in SCENES]
        edited, donor = apply_edit(photo, regions[size], edit, rng, scenes)
        placed = Placed(edited, regions[size].astype(np.uint8) * 255, np.eye(3))
    placed = post_transform(placed, transform, rng, photo, job.distractors)
    file_format, quality = choose_encoding(transform, rng)
    case_id = f"{job.source}-{edit or 'repost'}-{round(size * 100) if size else 0}-{transform}"
    path = f"images/{case_id}.{'png' if file_format == 'PNG' else 'jpg'}"
    options = {"quality": quality} if quality else {"compress_level": 1}
    Image.fromarray(placed.rgb).save(job.out / path, format=file_format, **options)
    mask = None
    if placed.mask is not None:
        mask = f"masks/{case_id}.png"
        Image.fromarray(placed.mask).save(job.out / mask, compress_level=1)
    quad = photo_quad(placed.to_image, photo.shape)
    return {
        "id": case_id,
        "path": path,
        "source": job.source,
        "source_path": str(job.data / "people" / f"{job.source}.jpg"),
        "registered": job.registered,
        "expected_kind": "repost" if edit is None else "manipulated",
        "edit": edit,
        "target_fraction": size,
        "region_fraction": None if size is None else round(float(regions[size].mean()), 4),
        "transform": transform,
        "mask": mask,
        "photo_box": visible_box(quad, placed.rgb.shape),
        "photo_quad": quad.round(2).tolist(),
        "original_box": None
        if placed.original is None
        else visible_box(photo_quad(placed.original, photo.shape), placed.rgb.shape),
        "jpeg_quality": quality,
        # other photos of the data whose pixels this case holds: the texture pasted in, and the
        # photo beside a repost in a collage (a benchmark of pairs must not call those false)
        "donor": None if donor is None else str(donor),
        "beside": None if placed.beside is None else str(placed.beside),
    }


def source_cases(job: SourceJob) -> list[dict]:
    """Every case of one source, written to disk; returns their manifest entries."""
    rng = random.Random(f"{job.seed}-{job.source}")
    people = job.data / "people"
    photo = read_rgb(people / f"{job.source}.jpg")
    garment = np.asarray(Image.open(people / f"{job.source}_mask.png")) > 127
    head = head_mask(np.asarray(Image.open(job.data / "people_labels" / f"{job.source}.png")))
    regions = {size: edit_region(garment, head, size) for size in SIZES}
    return [make_case(job, photo, regions, plan, rng) for plan in case_plan(job.offset)]


def assign_sources(source_ids: list[str], seed: int) -> tuple[set[str], dict[str, int]]:
    """Which sources are registered (a seeded half), and each source's transform offset.

    Offsets are dealt evenly within each half, so positives and negatives alike see every
    (edit, size, transform) about equally often.
    """
    rng = random.Random(seed)
    registered = set(rng.sample(source_ids, len(source_ids) // 2))
    offsets: dict[str, int] = {}
    for half in (
        [s for s in source_ids if s in registered],
        [s for s in source_ids if s not in registered],
    ):
        dealt = [i % len(TRANSFORMS) for i in range(len(half))]
        rng.shuffle(dealt)
        offsets.update(zip(half, dealt, strict=True))
    return registered, offsets


def remove_previous(out: Path) -> None:
    """Delete the files a previous build listed, so no stale case lingers; touch nothing else."""
    manifest = out / "manifest.json"
    if not manifest.is_file():
        return
    for case in json.loads(manifest.read_text())["cases"]:
        for relative in (case["path"], case["mask"]):
            if relative:
                (out / relative).unlink(missing_ok=True)


def run_jobs(make: Callable[[Any], list[dict]], jobs: list, workers: int) -> list[dict]:
    """Every source's cases, ``make(job)`` per source, in ``workers`` processes; flattened."""
    if workers <= 1:
        per_source = [make(job) for job in jobs]
    else:
        with Pool(workers, initializer=cv2.setNumThreads, initargs=(1,)) as pool:
            per_source = pool.map(make, jobs, chunksize=1)
    return [case for cases in per_source for case in cases]


def write_manifest(
    out: Path,
    data: Path,
    seed: int,
    sources: list[str],
    registered: set[str],
    cases: list[dict],
    distractors: list[Path],
) -> dict:
    """manifest.json, the file bench/accuracy.py and bench/pairs.py read; returns it."""
    manifest = {
        "seed": seed,
        "data": str(data),
        "sources": [
            {"id": s, "path": str(data / "people" / f"{s}.jpg"), "registered": s in registered}
            for s in sources
        ],
        "cases": cases,
        "distractors": [str(p) for p in distractors],
        "negative_cases": [case["id"] for case in cases if not case["registered"]],
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def build(
    data: Path,
    out: Path,
    seed: int = SEED,
    limit_sources: int | None = None,
    limit_distractors: int | None = None,
    workers: int = 2,
) -> dict:
    """Write every case and manifest.json under ``out``; return the manifest.

    The limits take the first sources and distractors, for quick runs; registration, offsets
    and every source's cases stay what the full build makes.
    """
    data = data.resolve()
    source_ids = sorted(p.stem for p in (data / "people").glob("[0-9][0-9][0-9][0-9].jpg"))
    distractors = tuple(sorted((data / "distractors").glob("*.jpg")))
    registered, offsets = assign_sources(source_ids, seed)
    chosen = source_ids[:limit_sources]
    remove_previous(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    jobs = [SourceJob(data, out, s, s in registered, offsets[s], seed, distractors) for s in chosen]
    cases = run_jobs(source_cases, jobs, workers)
    return write_manifest(
        out, data, seed, chosen, registered, cases, list(distractors[:limit_distractors])
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("bench/out/cases"))
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--limit-sources", type=int, default=None)
    parser.add_argument("--limit-distractors", type=int, default=None)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    started = time.perf_counter()
    manifest = build(
        args.data, args.out, args.seed, args.limit_sources, args.limit_distractors, args.workers
    )
    cases = manifest["cases"]
    derivatives = sum(case["expected_kind"] == "manipulated" for case in cases)
    print(
        f"{len(cases)} cases ({len(cases) - derivatives} reposts, {derivatives} derivatives) "
        f"from {len(manifest['sources'])} sources "
        f"({sum(s['registered'] for s in manifest['sources'])} registered); negatives: "
        f"{len(manifest['negative_cases'])} cases + {len(manifest['distractors'])} distractors; "
        f"{time.perf_counter() - started:.0f} s -> {args.out}"
    )


if __name__ == "__main__":
    main()
