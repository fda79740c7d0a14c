"""Where a registered photo lies in a scanned image: how much of each the other covers, and
whether the photo's outline is drawn in the scanned image as a seam.

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
    corners = frame_corners(signature.frame_width, signature.frame_height)
    outline = project(np.linalg.inv(transform), corners)
    grey = cv2.cvtColor(work, cv2.COLOR_RGB2GRAY).astype(np.float32)
    height, width = grey.shape
    centre = outline.mean(axis=0)
    seam_points = inside_points = 0
    for start, end in zip(outline, np.roll(outline, -1, axis=0), strict=True):
        along = np.linspace(0.1, 0.9, 48)[:, None]
        points = start + along * (end - start)
        direction = (end - start) / max(float(np.linalg.norm(end - start)), 1e-6)
        normal = np.array([-direction[1], direction[0]])
        if np.dot(points.mean(axis=0) - centre, normal) < 0:
            normal = -normal  # pointing out of the photo
        probes = [points + d * normal for d in (3.0, -3.0, -9.0)]
        inside = np.all(
            [
                (p[:, 0] >= 0) & (p[:, 0] < width - 1) & (p[:, 1] >= 0) & (p[:, 1] < height - 1)
                for p in probes
            ],
            axis=0,
        )
        if inside.sum() < 8:
            continue  # this side is the derivative's own border: nothing beyond it
        outside, edge, inner = (
            cv2.remap(
                grey,
                p[inside, 0:1].astype(np.float32),
                p[inside, 1:2].astype(np.float32),
                cv2.INTER_LINEAR,
            ).ravel()
            for p in probes
        )
        step_across, step_inside = np.abs(outside - edge), np.abs(edge - inner)
        seam_points += int((step_across > step_inside + SEAM_CONTRAST).sum())
        inside_points += int(inside.sum())
    return inside_points > 0 and seam_points >= SEAM_SHARE * inside_points
