"""Scenes: originals that share much of their background (other photos taken at one place).

A homography over their local features with many inliers: a test looser than verification,
used for nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping

import cv2

from counterfake.pairs.model import Collection
from counterfake.pairs.sets import DisjointSets
from counterfake.signature.extract import Signature

SCENE_MIN_INLIERS = 40  # homography inliers between two originals of the same scene
SCENE_PIXELS = 6.0  # RANSAC tolerance for the scene test, in the 512-px reference frame
MIN_FEATURES = 8  # fewer features on either side: no homography is tried
RATIO = 0.8  # Lowe's ratio test: a feature's best pairing must beat its second this clearly


def scene_groups(
    originals: list[int], signatures: Mapping[int, Signature], collection: Collection
) -> list[int]:
    """A scene number (from 1) for each original: originals sharing background share one."""
    scenes = DisjointSets(originals)
    for a in originals:
        for b in collection.candidates.get(a, []):
            if (
                b in scenes
                and scenes.find(a) != scenes.find(b)
                and same_scene(signatures[a], signatures[b])
            ):
                scenes.join(a, b)
    numbers: dict[int, int] = {}
    return [numbers.setdefault(scenes.find(k), len(numbers) + 1) for k in originals]


def same_scene(a: Signature, b: Signature) -> bool:
    """Whether two photos share much of their background: many features on one homography.

    Looser than verification (any homography, not a similarity or a mild slant; a wide
    tolerance): another photo of the same place passes, while one photo inside another is
    already a pair. Either orientation counts.
    """
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    for reference in (b.features, b.mirrored):
        if len(a.features) < MIN_FEATURES or len(reference) < MIN_FEATURES:
            continue
        good = [
            m
            for m, n in (
                p
                for p in matcher.knnMatch(a.features.descriptors, reference.descriptors, k=2)
                if len(p) == 2
            )
            if m.distance < RATIO * n.distance
        ]
        if len(good) < SCENE_MIN_INLIERS:
            continue
        src = a.features.xy[[m.queryIdx for m in good]]
        dst = reference.xy[[m.trainIdx for m in good]]
        _, inliers = cv2.findHomography(src, dst, cv2.RANSAC, SCENE_PIXELS)
        if inliers is not None and int(inliers.sum()) >= SCENE_MIN_INLIERS:
            return True
    return False
