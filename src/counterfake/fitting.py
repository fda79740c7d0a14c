"""Fitting the map that carries a scanned image's features onto a registered photo's.

RANSAC finds a similarity first; it is refined to an affine map (a copy resized to other
proportions) or a mild perspective map (a photo of a screen taken at a slant) only when that
explains clearly more of the pairs.
"""

from __future__ import annotations

import cv2
import numpy as np

from counterfake.geometry import project
from counterfake.thresholds import Thresholds

_PERSPECTIVE_ROUNDS = 3  # least-squares refits of a perspective map on the pairs near it


def fit_transform(
    query_xy: np.ndarray, photo_xy: np.ndarray, mirrored: bool, t: Thresholds
) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Scanned points -> photo points: (3x3 homography, inlier mask, median inlier residual).

    RANSAC first finds a similarity (scale, rotation, shift): few parameters, so a coincidence
    rarely fits. A mirrored appearance is a similarity composed with a reflection, which
    OpenCV's similarity estimator cannot express, so the scanned points are reflected first and
    the reflection is folded back in. The similarity is then refined to a general affine map
    when that explains more pairs with a modest stretch (a copy resized to other proportions),
    and that to a perspective map when it explains clearly more (see ``_slanted``).
    """
    source = query_xy.copy()
    if mirrored:
        source[:, 0] = -source[:, 0]
    transform, _ = cv2.estimateAffinePartial2D(
        source,
        photo_xy,
        method=cv2.RANSAC,
        ransacReprojThreshold=t.ransac_pixels,
        maxIters=4000,
        confidence=0.999,
        refineIters=10,
    )
    if transform is None:
        return None
    if mirrored:
        transform = transform @ np.diag([-1.0, 1.0, 1.0])
    transform = _slanted(_stretched(transform, query_xy, photo_xy, t), query_xy, photo_xy, t)
    distances = _residuals(transform, query_xy, photo_xy)
    inlier = distances <= t.ransac_pixels
    if inlier.sum() < 3:
        return None
    return transform, inlier, float(np.median(distances[inlier]))


def _residuals(transform: np.ndarray, query_xy: np.ndarray, photo_xy: np.ndarray) -> np.ndarray:
    return np.linalg.norm(project(transform, query_xy) - photo_xy, axis=1)


def _stretched(
    similarity: np.ndarray, query_xy: np.ndarray, photo_xy: np.ndarray, t: Thresholds
) -> np.ndarray:
    """The affine refinement of a similarity, if it explains more pairs and stretches little."""
    near = _residuals(similarity, query_xy, photo_xy) <= 4 * t.ransac_pixels
    if near.sum() < t.min_inliers:
        return similarity
    affine, _ = cv2.estimateAffine2D(
        query_xy[near], photo_xy[near], method=cv2.RANSAC, ransacReprojThreshold=t.ransac_pixels
    )
    if affine is None:
        return similarity
    singular = np.linalg.svd(affine[:, :2], compute_uv=False)
    if singular[0] > t.max_stretch * singular[1]:
        return similarity
    count = (_residuals(affine, query_xy, photo_xy) <= t.ransac_pixels).sum()
    return (
        affine
        if count > (_residuals(similarity, query_xy, photo_xy) <= t.ransac_pixels).sum()
        else similarity
    )


def _slanted(
    affine: np.ndarray, query_xy: np.ndarray, photo_xy: np.ndarray, t: Thresholds
) -> np.ndarray:
    """The affine map as a 3x3 homography, refined to a perspective map when that explains
    ``perspective_gain`` times as many pairs and bends little.

    A photo of a screen taken at a slant, or a "keystone" correction, leaves residuals that
    grow towards one side under any affine map: its inliers thin out there and their median
    residual rises, so such a copy can fail the very test that tells the same photo from
    another photo of the same scene. The perspective map has more freedom, so it must earn its
    place by explaining clearly more pairs, and its scale may vary across the matched points
    by at most ``max_perspective`` (a steeper slant is not a repost any more).
    """
    flat = np.vstack([affine, [0.0, 0.0, 1.0]])
    before = (_residuals(affine, query_xy, photo_xy) <= t.ransac_pixels).sum()
    if before < t.min_inliers:  # a coincidental fit: nothing to refine
        return flat
    homography = flat
    for _ in range(_PERSPECTIVE_ROUNDS):  # the affine map already sorted the pairs: no RANSAC
        near = _residuals(homography, query_xy, photo_xy) <= 2 * t.ransac_pixels
        if near.sum() < t.min_inliers:
            return flat
        homography, _ = cv2.findHomography(query_xy[near], photo_xy[near], 0)
        if homography is None or abs(np.linalg.det(homography)) < 1e-12:
            return flat
    homography = homography / homography[2, 2]
    corners = np.concatenate([query_xy[near].min(axis=0), query_xy[near].max(axis=0)])
    box = corners[[0, 1, 2, 1, 2, 3, 0, 3]].reshape(4, 2)
    depth = box @ homography[2, :2] + 1.0
    if depth.min() <= 0 or depth.max() > t.max_perspective * depth.min():
        return flat
    explained = (_residuals(homography, query_xy, photo_xy) <= t.ransac_pixels).sum()
    return homography if explained >= t.perspective_gain * before else flat
