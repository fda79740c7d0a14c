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
# Set on negatives too: the same photos' grey difference to the mirror image was at least 0.83
# of that to the nearest edge pixel (79 alignments); reflected copies' is 0.07-0.46.
MIRRORED = 0.5  # difference to the mirror image, in that to the edge, under which it is one
MIRROR_DEPTH = 2.0  # photo pixels beyond the outline from which a mirror is told from its edge
MIN_BEYOND = 200  # pixels beyond the outline needed to say whether they are mirrored


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


def outlines_overlap(first: np.ndarray, second: np.ndarray, signature: Signature) -> float:
    """How much two alignments of the photo (scanned frame -> photo frame) put it in the same
    place of the scanned image: their outlines' common area, as a share of the smaller."""
    corners = frame_corners(signature.frame_width, signature.frame_height)
    outlines = [
        np.ascontiguousarray(project(np.linalg.inv(t), corners), np.float32)
        for t in (first, second)
    ]
    area, _ = cv2.intersectConvexConvex(outlines[0], outlines[1])
    smaller = min(abs(cv2.contourArea(outline)) for outline in outlines)
    return float(area / max(smaller, 1e-6))


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
    return not (fill or reflection or mirrored_beyond(work, transform, signature))


def mirrored_beyond(work: np.ndarray, transform: np.ndarray, signature: Signature) -> bool:
    """Whether the scanned image beyond the photo's outline is the photo reflected in its edges.

    A copy turned in perspective or rotated is often filled out to a rectangle by reflecting the
    photo in its edges (the default border of OpenCV's and other libraries' warps). Then each
    pixel beyond the outline repeats the pixel as deep inside it, mirrored in the photo's own
    frame: exactly there, whatever the slant, and however thin the wedge it fills. Another shot
    of the scene goes on instead, and a pixel beyond resembles the nearest edge pixel more than
    the mirror image twice as far. So the mean grey difference to the mirror image, over that
    to the nearest edge pixel, is small for a reflection and about one or more for a scene
    (the axis of the reflection is looked for within a pixel of the edge).
    """
    grey = cv2.cvtColor(work, cv2.COLOR_RGB2GRAY).astype(np.float32)
    height, width = grey.shape
    to_scanned = np.linalg.inv(transform)
    outline = project(to_scanned, frame_corners(signature.frame_width, signature.frame_height))
    inside = np.zeros((height, width), np.uint8)
    cv2.fillConvexPoly(inside, np.round(outline).astype(np.int32), 1)
    ys, xs = np.nonzero(inside[::2, ::2] == 0)  # every other pixel is plenty for a mean
    beyond = np.stack([xs * 2, ys * 2], axis=1).astype(np.float64)
    photo = project(transform, beyond)
    last = np.array([signature.frame_width - 1.0, signature.frame_height - 1.0])
    edge = np.clip(photo, 0.0, last)
    deep = np.abs(photo - edge).max(axis=1) >= MIRROR_DEPTH
    if deep.sum() < MIN_BEYOND:
        return False
    beyond, photo, edge = beyond[deep], photo[deep], edge[deep]
    values = _grey_at(grey, beyond)
    edge_values = _grey_at(grey, project(to_scanned, edge))
    for axis_shift in (0.0, 1.0, -1.0):
        mirror = np.where(photo < 0, -photo - axis_shift, photo)
        mirror = np.where(photo > last, 2 * last - photo + axis_shift, mirror)
        seen = project(to_scanned, mirror)
        within = (seen >= 0).all(axis=1) & (seen[:, 0] <= width - 1) & (seen[:, 1] <= height - 1)
        if within.sum() < MIN_BEYOND:
            continue
        to_mirror = float(np.abs(values[within] - _grey_at(grey, seen[within])).mean())
        to_edge = float(np.abs(values[within] - edge_values[within]).mean())
        if to_mirror < MIRRORED * max(to_edge, 1e-3):
            return True
    return False


def _grey_at(grey: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Grey levels at any number of points, interpolated (``cv2.remap`` takes maps of at most
    32,767 a side, so the points go in rows of 1,024)."""
    count = len(points)
    rows = -(-count // 1024)
    padded = np.zeros((rows * 1024, 2), np.float32)
    padded[:count] = points
    maps = padded[:, 0].reshape(rows, 1024), padded[:, 1].reshape(rows, 1024)
    return cv2.remap(grey, *maps, cv2.INTER_LINEAR).ravel()[:count]


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
