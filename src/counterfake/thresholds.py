"""The operating point of matching: every constant verification, localisation and the decision
read, in one place (the number of false alarms' own background is in evidence.py)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Thresholds:
    """The operating point. Set on negatives only; see bench/README section of the README."""

    candidates: int = 10  # (photo, orientation) pairs verified per image
    min_votes: float = 0.3  # weighted index votes below which a candidate is not worth verifying
    max_descriptor_distance: int = 64  # of 256 bits, for a tentative pair
    ransac_pixels: float = 3.0  # inlier distance in the photo's 512-px frame
    min_inliers: int = 14  # a floor for fitting at all; the decision is the NFA's
    max_median_residual: float = 1.6  # pixels; a different photo of the same scene lands wider
    max_stretch: float = 1.3  # most anisotropy of the affine map (a resize to other proportions)
    max_perspective: float = 1.3  # most a perspective map's scale varies across the photo
    perspective_gain: float = 1.1  # how many more pairs a perspective map must explain
    min_visible: float = 0.3  # share of the photo that must lie inside the scanned image
    colour_difference: float = 10.0  # CIE Lab units, after the global fit
    texture_difference: float = 0.45  # |log| contrast ratio, after the global fit
    noise_multiple: float = 3.0  # a cell is altered only if also this far above the noise
    min_region_cells: int = 6  # smaller altered components are overlays, not edits
    mask_noise_multiple: float = 1.5  # a mask grows through neighbours this far above the noise
    manipulated_fraction: float = 0.015  # altered share of the photo that makes a manipulation
    max_altered_fraction: float = 0.8  # beyond this the "match" is a coincidental alignment
    min_agreeing: float = 0.3  # share of the photo that must agree in absolute terms, likewise
    min_agreeing_with_face: float = 0.2  # ...where the face is in view and agrees
    min_face_agreement: float = 0.5  # a derivative keeps the face: see signature/faces.py
