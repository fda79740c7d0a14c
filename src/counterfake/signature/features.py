"""Local features: the part of a signature that survives crops, rescaling and regenerated regions.

A nudify derivative keeps the face, hair, arms and background of the photo it was made from, but not
the whole picture, so a global hash cannot find it. Local features can: each one describes a small
patch around a corner-like point, and a few dozen of them landing in geometrically consistent places
prove that the scanned image contains the registered photo.

We use OpenCV's ORB (FAST corners + oriented BRIEF, a 256-bit binary descriptor): it is fast enough
to run on every scanned image and its binary descriptors index well. ORB is not mirror-invariant, so
a registered photo also keeps the features of its mirror image; that doubles the registry side once
instead of doubling the work on every scanned image.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from operator import attrgetter

import cv2
import numpy as np

DESCRIPTOR_BYTES = 32
PATCH_SIZE = 31  # ORB's patch, and a keypoint's size at the pyramid's finest level
SPREAD_GRID = 8  # features are chosen round-robin over an 8x8 grid of the image...
LEVEL_GROUPS = 2  # ...and over fine and coarse pyramid levels, so no region or scale dominates


@dataclass(frozen=True)
class LocalFeatures:
    """Keypoints and their descriptors, in the pixel frame the features were extracted from.

    Rows are ordered by importance (spread over the image first, strength second), so a prefix
    of the arrays is itself a well-spread subset: the index uses such a prefix.
    """

    xy: np.ndarray  # float32 (n, 2)
    size: np.ndarray  # float32 (n,)
    angle: np.ndarray  # float32 (n,), degrees
    octave: np.ndarray  # int8 (n,), pyramid level
    descriptors: np.ndarray  # uint8 (n, 32)

    def __len__(self) -> int:
        return len(self.xy)

    def head(self, count: int) -> LocalFeatures:
        """The first ``count`` features (a well-spread subset: see the class)."""
        return LocalFeatures(
            self.xy[:count],
            self.size[:count],
            self.angle[:count],
            self.octave[:count],
            self.descriptors[:count],
        )

    def scaled(self, x_factor: float, y_factor: float) -> LocalFeatures:
        """The same features in a frame resized by these factors (keypoint sizes by their mean)."""
        return dataclasses.replace(
            self,
            xy=self.xy * np.array([x_factor, y_factor], np.float32),
            size=self.size * np.float32((x_factor + y_factor) / 2),
        )

    @staticmethod
    def empty() -> LocalFeatures:
        return LocalFeatures(
            np.zeros((0, 2), np.float32),
            np.zeros(0, np.float32),
            np.zeros(0, np.float32),
            np.zeros(0, np.int8),
            np.zeros((0, DESCRIPTOR_BYTES), np.uint8),
        )


@dataclass(frozen=True)
class OrbSettings:
    """Where ORB looks: its scale pyramid, how strong a FAST corner must be, and how many it keeps.

    The defaults are those of registered photos (stored signatures depend on them).
    """

    scale_factor: float = 1.2
    levels: int = 8
    fast_threshold: int = 10
    # The spread selection chooses among this many per feature kept: ORB keeps its strongest
    # corners over the whole image, and with few spares they crowd into a patterned garment
    # (of 120 people photos, 9 had over 60% of their 512 features on the garment with 1.5 per
    # feature kept, 1 with 8; the garment is 18% of a photo). Only the kept ones get a
    # descriptor, so the spares cost ORB's detection alone.
    detected_per_kept: float = 8.0


def _orb(max_features: int, settings: OrbSettings) -> cv2.ORB:
    return cv2.ORB_create(
        nfeatures=int(max_features * settings.detected_per_kept),
        scaleFactor=settings.scale_factor,
        nlevels=settings.levels,
        edgeThreshold=15,
        patchSize=PATCH_SIZE,
        fastThreshold=settings.fast_threshold,
    )


def orb_size(octave: np.ndarray, settings: OrbSettings = OrbSettings()) -> np.ndarray:
    """The size ORB gives a keypoint found at pyramid level ``octave`` (its patch, scaled to
    the level): what a stored signature, which keeps the level, gives back (signature/record.py)."""
    levels = np.power(np.float32(settings.scale_factor), octave.astype(np.float32))
    return np.float32(PATCH_SIZE) * levels  # in float32, as OpenCV computes it


def extract_features(
    gray: np.ndarray, max_features: int, settings: OrbSettings = OrbSettings()
) -> LocalFeatures:
    """Detect ORB features on a grey image and keep at most ``max_features`` well-spread ones."""
    orb = _orb(max_features, settings)
    if settings.detected_per_kept > 1:
        keypoints = orb.detect(gray, None)
        if not keypoints:
            return LocalFeatures.empty()
        xy, size, angle, response, octave = _keypoint_arrays(keypoints)
        order = _spread_order(xy, response, octave, settings.levels, gray.shape)[:max_features]
        keypoints, descriptors = orb.compute(gray, [keypoints[i] for i in order])
    else:
        keypoints, descriptors = orb.detectAndCompute(gray, None)
    if descriptors is None or not keypoints:
        return LocalFeatures.empty()
    xy, size, angle, response, octave = _keypoint_arrays(keypoints)
    order = _spread_order(xy, response, octave, settings.levels, gray.shape)[:max_features]
    return LocalFeatures(
        xy=np.ascontiguousarray(xy[order]),
        size=size[order],
        angle=angle[order],
        octave=octave[order],
        descriptors=np.ascontiguousarray(descriptors[order]),
    )


def _keypoint_arrays(keypoints: Sequence[cv2.KeyPoint]) -> tuple[np.ndarray, ...]:
    """(xy, size, angle, response, octave) of the keypoints, as arrays."""
    return (
        cv2.KeyPoint_convert(keypoints),
        *(
            np.fromiter(map(attrgetter(name), keypoints), dtype, len(keypoints))
            for name, dtype in _KEYPOINT_FIELDS
        ),
    )


# Read one attribute at a time, through attrgetter: a tuple per keypoint costs more than the ORB
# descriptors of a small image.
_KEYPOINT_FIELDS = (
    ("size", np.float32),
    ("angle", np.float32),
    ("response", np.float32),
    ("octave", np.int8),
)


def _spread_order(
    xy: np.ndarray,
    response: np.ndarray,
    octave: np.ndarray,
    levels: int,
    shape: tuple[int, ...],
) -> np.ndarray:
    """Order features so that every prefix is spread over the image and over scales.

    Without this, the strongest corners crowd into the most textured region, which in a photo of
    a clothed person is often the garment: exactly the region a nudify derivative replaces.
    Each feature gets its rank within its (grid cell, level group) bucket; sorting by that rank,
    then by strength, deals the features out round-robin.
    """
    height, width = shape[:2]
    col = np.minimum((xy[:, 0] * SPREAD_GRID / width).astype(int), SPREAD_GRID - 1)
    row = np.minimum((xy[:, 1] * SPREAD_GRID / height).astype(int), SPREAD_GRID - 1)
    level_group = np.minimum(octave.astype(int) * LEVEL_GROUPS // levels, LEVEL_GROUPS - 1)
    bucket = (row * SPREAD_GRID + col) * LEVEL_GROUPS + level_group
    by_strength = np.argsort(-response, kind="stable")
    # Sorting by bucket (stable, so strongest first within each) puts each bucket's features in
    # a run; a feature's rank is its position minus where its run starts.
    order = by_strength[np.argsort(bucket[by_strength], kind="stable")]
    sorted_buckets = bucket[order]
    run_start = np.searchsorted(sorted_buckets, sorted_buckets, side="left")
    rank_in_bucket = np.empty(len(xy), int)
    rank_in_bucket[order] = np.arange(len(order)) - run_start
    return np.lexsort((-response, rank_in_bucket))
