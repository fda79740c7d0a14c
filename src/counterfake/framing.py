"""Where a registered photo lies in a scanned image: how much of each the other covers, whether
the photo's outline is drawn in the scanned image as a seam, and whether the scanned image shows
more of the scene than any copy of the photo could.

A copy of a photo shows at most the photo: cropped, or framed by something else (a collage's
other tile, a phone's interface, a border), and then its outline is a straight step in the
scanned pixels. Another shot of the same scene shows the scene going on beyond the photo's
outline, with no step. Matching uses this to tell a repost from a same-scene photo, pairs to
tell a collage from a crop.
"""

from __future__ import annotations

import cv2
import numpy as np

from counterfake.geometry import project
from counterfake.signature.extract import Signature

SEAM_SHARE = 0.5  # share of the footprint's inner border that must look like a seam
SEAM_CONTRAST = 8.0  # grey levels by which the step across a seam exceeds the step inside
STRIP = 8  # pixels on each side of the photo's outline compared for new detail
AXIS_SLACK = 2  # pixels by which a reflection's axis may miss the outline as fitted
# Both set on negatives: over the 120-odd same-scene photos of ../shared/data/scenes that align
# with their group's first photo and show more of the scene, the detail beyond the outline was
# at least 0.63 of the detail inside, and the mirrored correlation at most 0.62.
BLURRED_FILL = 0.6  # beyond the outline, less detail than this share of inside is a fill
REFLECTION = 0.65  # correlation across the outline with inside's, mirrored: a reflection


def frame_corners(width: float, height: float) -> np.ndarray:
    return np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)


def frame_overlap(
    transform: np.ndarray, width: float, height: float, signature: Signature
) -> tuple[float, float]:
    """(share of the photo's frame inside the scanned frame, share of the scanned frame the photo
    covers), for a scanned frame of ``width`` x ``height`` that ``transform`` maps into the
    photo's frame."""
    derivative = project(transform, frame_corners(width, height))
    source = frame_corners(signature.frame_width, signature.frame_height)
    area, _ = cv2.intersectConvexConvex(
        np.ascontiguousarray(derivative, np.float32), np.ascontiguousarray(source)
    )
    derivative_area = abs(cv2.contourArea(derivative.astype(np.float32)))
    source_area = float(signature.frame_width * signature.frame_height)
    return float(area / source_area), float(area / max(derivative_area, 1e-6))


def has_seam(work: np.ndarray, transform: np.ndarray, signature: Signature) -> bool:
    """Whether the source's outline inside the derivative is a straight edge (a composition).

    A collage or a screenshot puts the photo on a border, a screen or beside another photo:
    crossing its outline, the grey level jumps, all along it. A photo that merely continues
    beyond a crop shows no such line. Each side of the outline that lies inside the derivative
    is sampled; a point is on a seam when the step across the outline exceeds the step just
    inside it by SEAM_CONTRAST grey levels.
    """
    grey = cv2.cvtColor(work, cv2.COLOR_RGB2GRAY).astype(np.float32)
    seam_points = inside_points = 0
    for points, normal in _sides(transform, signature, np.linspace(0.1, 0.9, 48)):
        probes = [points + d * normal for d in (3.0, -3.0, -9.0)]
        inside = _within(grey, probes)
        if inside.sum() < 8:
            continue  # this side is the derivative's own border: nothing beyond it
        outside, edge, inner = _sample(grey, probes, inside)
        step_across, step_inside = np.abs(outside - edge), np.abs(edge - inner)
        seam_points += int((step_across > step_inside + SEAM_CONTRAST).sum())
        inside_points += int(inside.sum())
    return inside_points > 0 and seam_points >= SEAM_SHARE * inside_points


def _sides(
    transform: np.ndarray, signature: Signature, along: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each side of the photo's outline in the scanned frame: points at the fractions
    ``along`` of it, and its unit normal pointing out of the photo."""
    corners = frame_corners(signature.frame_width, signature.frame_height)
    outline = project(np.linalg.inv(transform), corners)
    centre = outline.mean(axis=0)
    sides = []
    for start, end in zip(outline, np.roll(outline, -1, axis=0), strict=True):
        points = start + along[:, None] * (end - start)
        direction = (end - start) / max(float(np.linalg.norm(end - start)), 1e-6)
        normal = np.array([-direction[1], direction[0]])
        if np.dot(points.mean(axis=0) - centre, normal) < 0:
            normal = -normal
        sides.append((points, normal))
    return sides


def _within(grey: np.ndarray, lines: list[np.ndarray]) -> np.ndarray:
    """Which positions along the lines lie inside the image on every line."""
    height, width = grey.shape
    return np.all(
        [
            (p[:, 0] >= 0) & (p[:, 0] < width - 1) & (p[:, 1] >= 0) & (p[:, 1] < height - 1)
            for p in lines
        ],
        axis=0,
    )


def scene_continues(work: np.ndarray, transform: np.ndarray, signature: Signature) -> bool:
    """Whether the scanned image goes on beyond the photo's outline with new detail of its own.

    What lies beyond the outline of a copy is something else (told by ``has_seam``) or the
    photo itself: mirrored (a reflected border) or enlarged and blurred (a square "no crop"
    fill). Both show at the outline: a reflection repeats, outward, the detail just inside it;
    a blurred fill has far less detail than the photo just inside. Another shot of the scene
    shows detail of its own there. Strips STRIP pixels deep are sampled on both sides of every
    side of the outline that lies inside the scanned image; the detail is the grey level's
    change along the outline.
    """
    grey = cv2.cvtColor(work, cv2.COLOR_RGB2GRAY).astype(np.float32)
    depths = np.arange(2.0, STRIP + 1.0)
    # the outline is placed to a pixel or two: a reflection's axis is looked for within
    # AXIS_SLACK pixels of it, which puts the mirror of depth d at inner depth d - 2 x slack
    inner_depths = np.arange(2.0 - 2 * AXIS_SLACK, STRIP + 1.0 + 2 * AXIS_SLACK)
    outer_detail = inner_detail = 0.0
    mirrored: list[float] = []
    for points, normal in _sides(transform, signature, np.linspace(0.05, 0.95, 96)):
        outer = [points + d * normal for d in depths]
        inner = [points - d * normal for d in inner_depths]
        inside = _within(grey, outer + inner)
        if inside.sum() < 16:
            continue  # this side is the scanned image's own border: nothing beyond it

        outer_grey, inner_grey = _sample(grey, outer, inside), _sample(grey, inner, inside)
        same_depths = inner_grey[2 * AXIS_SLACK : 2 * AXIS_SLACK + len(depths)]
        outer_detail += float(np.abs(np.diff(outer_grey, axis=1)).sum())
        inner_detail += float(np.abs(np.diff(same_depths, axis=1)).sum())
        # across the outline, not along it: an edge crossing the outline shows on both sides
        # whatever lies beyond, but only a reflection repeats what runs beside the outline
        out_across, in_across = np.diff(outer_grey, axis=0), np.diff(inner_grey, axis=0)
        mirrored.append(
            max(
                _correlation(out_across, in_across[shift : shift + len(depths) - 1])
                for shift in range(4 * AXIS_SLACK + 1)
            )
        )
    if inner_detail == 0.0 and outer_detail == 0.0:
        return False
    fill = outer_detail < BLURRED_FILL * inner_detail
    reflection = bool(mirrored) and max(mirrored) > REFLECTION
    return not (fill or reflection)


def _sample(grey: np.ndarray, strip: list[np.ndarray], keep: np.ndarray) -> np.ndarray:
    """Grey levels at the kept points of each line of a strip: (lines, points)."""
    return np.stack(
        [
            cv2.remap(
                grey,
                line[keep, 0:1].astype(np.float32),
                line[keep, 1:2].astype(np.float32),
                cv2.INTER_LINEAR,
            ).ravel()
            for line in strip
        ]
    )


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])
