"""Verification, localisation and the repost/manipulated decision.

For a scanned image the steps are:

1. **Candidates.** The index proposes the registered photos (and orientations) that share the most
   local features with the image.
2. **Verify.** Descriptors of the candidate and the image are paired, and RANSAC looks for one
   similarity transform (scale, rotation, shift; a mirrored copy, the scanned mirror image's)
   that carries many of the pairs onto each other, refined to a modest stretch or perspective
   when that explains clearly more of them (a copy resized to other proportions, a photo of a
   screen taken at a slant). A second instance of the same photo (the "before" beside the
   "after" in a collage) is searched for among the rest.
3. **Localise.** The image is warped into the photo's frame and summarised with the same coarse
   grid as the signature. A robust fit absorbs global changes (recompression, colour grading, a
   tone curve, a semi-transparent watermark), and a copy with no colour left is compared with
   the photo as a greyscale conversion would leave it; cells that still differ clearly, in colour
   or in texture, are the altered region. Isolated cells (text) are removed; what remains is mapped
   back into the scanned image's own pixels as the mask.
4. **Decide.** An alignment proves *this* photo, not a look-alike, only when its number of false
   alarms (evidence.py: how many unrelated registered photos would align as well, from how
   closely its features and textured cells are confirmed) is below ``evidence.MAX_NFA``. A
   scanned image that shows new scene beyond the photo's outline, with no seam, is another shot
   of the same scene: ``same_scene``, never a copy. Otherwise, almost nothing altered:
   ``repost``; a solid altered region: ``manipulated``. Most of the photo "altered": the
   alignment was a coincidence, and there is no match at all.
5. **A second look.** When nothing is found in an image laid out as a 2x2 grid (tiles.py),
   each cell is matched on its own, with the whole feature budget.

The operating point sits in :class:`Thresholds` and evidence.py; docs/matching.md has the
figures that set it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from counterfake.aligned import grid_in_frame, scanned_cells
from counterfake.cells import compare_cells
from counterfake.evidence import MAX_NFA, Evidence, alignment_evidence
from counterfake.fitting import fit_transform
from counterfake.framing import frame_overlap, has_seam, outlines_overlap, scene_continues
from counterfake.index.compact import AnyProposer, shortlist
from counterfake.masks import draw_cells
from counterfake.signature.extract import Query, Signature, make_query
from counterfake.signature.features import PATCH_SIZE, LocalFeatures
from counterfake.signature.grid import GRID_COLS, GRID_ROWS, dequantise
from counterfake.signature.hamming import two_nearest
from counterfake.thresholds import Thresholds
from counterfake.tiles import grid_cells

PLACE_OVERLAP = 0.5  # outlines' common share from which two alignments are over one place
PRECISE_PIXELS = 2.0  # photo-frame pixels per scanned pixel up to which corners land precisely
SCENE_BEYOND = 0.05  # share of a scanned image outside the photo that shows a wider shot

Kind = Literal["repost", "manipulated", "same_scene"]


@dataclass
class Instance:
    """One verified appearance of a registered photo in a scanned image."""

    transform: np.ndarray  # 3x3 homography: scanned working frame -> photo frame
    inliers: int
    residual: float
    visible: float
    altered_cells: np.ndarray = field(repr=False)  # bool (GRID_ROWS, GRID_COLS), photo frame
    masked_cells: np.ndarray = field(repr=False)  # altered and what continues them: the mask
    altered_fraction: float = 0.0  # share of the visible cells altered: what decisions count
    masked_fraction: float = 0.0  # share of the visible cells masked: what a match reports
    agreeing: float = 0.0  # share of visible cells within the absolute thresholds
    face_agreement: float | None = None  # share of the registered face that agrees; see faces.py
    agreeing_cells: np.ndarray | None = field(default=None, repr=False)  # bool, photo frame
    visible_cells: np.ndarray | None = field(default=None, repr=False)  # bool, photo frame
    trusted_cells: np.ndarray | None = field(default=None, repr=False)  # hold verified features
    evidence: Evidence | None = None  # what the alignment proves; see evidence.py


@dataclass
class Match:
    """A registered photo found in a scanned image."""

    photo_id: int
    kind: Kind
    score: float
    altered_fraction: float
    inliers: int
    instances: list[Instance] = field(repr=False)
    mask: np.ndarray | None = field(default=None, repr=False)  # uint8, scanned image size
    log10_nfa: float = 0.0  # unrelated registered photos expected to align as well, log10

    @property
    def nfa(self) -> float:
        """The number of false alarms (see evidence.py); 0.0 below 1e-300."""
        return 10.0**self.log10_nfa if self.log10_nfa > -300 else 0.0


@dataclass(frozen=True)
class SignatureQuery:
    """A scanned image known only by its signature, made where the image is (a platform hashing
    its uploads itself): local features and the coarse grid, no pixels.

    The signature's frame stands in for the image: features are verified in it, the alteration is
    localised by comparing the two grids cell by cell (coarser than comparing pixels, so a small
    copy inside a large image localises less finely), and the mask is drawn in that frame.
    """

    signature: Signature
    scale: float = 1.0  # the frame is the image

    @property
    def features(self) -> LocalFeatures:
        return self.signature.features

    @property
    def shape(self) -> tuple[int, int]:
        return self.signature.frame_height, self.signature.frame_width

    def mirror_features(self) -> LocalFeatures:
        """The mirror image's features, when the signature carries them (a registered
        photo's does not: matched as a scanned image, it finds no mirrored copy)."""
        return self.signature.mirrored


class Matcher:
    """Matches scanned images against an index and the signatures behind it."""

    def __init__(
        self,
        index: AnyProposer,
        signature_of: Callable[[int], Signature],
        thresholds: Thresholds | None = None,
    ) -> None:
        self.index = index
        self.signature_of = signature_of
        self.thresholds = thresholds or Thresholds()

    def match(self, query: Query | SignatureQuery) -> list[Match]:
        """All registered photos verified in the scanned image, best first.

        When the first look finds nothing in an image laid out as a grid (tiles.py), each cell
        is looked at on its own, with the whole feature budget; the number of false alarms then
        counts every look taken.
        """
        found = self.look(query)
        if found or not isinstance(query, Query):
            return found
        cells = grid_cells(query.work)
        if not cells:
            return []
        best: dict[int, Match] = {}
        for box in cells:
            x0, y0, x1, y1 = (round(v / query.scale) for v in box)
            cell = make_query(np.ascontiguousarray(query.rgb[y0:y1, x0:x1]))
            for match in self.look(cell, looks=1 + len(cells)):
                match = _placed(match, query.shape, x0, y0)
                if match.photo_id not in best or _preferred(match, best[match.photo_id]):
                    best[match.photo_id] = match
        return sorted(best.values(), key=lambda m: -m.score)

    def look(self, query: Query | SignatureQuery, looks: int = 1) -> list[Match]:
        """The registered photos verified in the image (or cell) as a whole, best first;
        ``looks`` is how many looks at one scanned image the number of false alarms counts."""
        t = self.thresholds
        found: dict[int, Match] = {}
        for candidate in shortlist(self.index, query.features, t.candidates, query.mirror_features):
            if candidate.votes < t.min_votes:
                break
            try:
                signature = self.signature_of(candidate.photo_id)
            except KeyError:  # withdrawn since the index answered: nothing to verify
                continue
            match = verify_and_decide(
                candidate.photo_id,
                query,
                signature,
                candidate.mirrored,
                t,
                registry_size=len(self.index) * looks,
            )
            if match is None:
                continue
            best = found.get(candidate.photo_id)
            if best is None or match.score > best.score:
                found[candidate.photo_id] = match
        return sorted(found.values(), key=lambda m: -m.score)


def _placed(match: Match, shape: tuple[int, int], x: int, y: int) -> Match:
    """A match found in a grid cell whose corner is at (x, y), with its mask in the whole
    scanned image (its instances stay in the cell's frame)."""
    if match.mask is None:
        return match
    mask = np.zeros(shape, np.uint8)
    height, width = match.mask.shape
    mask[y : y + height, x : x + width] = match.mask
    return replace(match, mask=mask)


def _preferred(match: Match, other: Match) -> bool:
    """Of one photo found in two cells (a before/after grid), the manipulated copy is what
    matters; otherwise the better aligned."""
    return (match.kind == "manipulated", match.score) > (other.kind == "manipulated", other.score)


def verify(
    query: Query | SignatureQuery,
    signature: Signature,
    mirrored: bool,
    t: Thresholds,
    *,
    pruned: bool = False,
) -> list[Instance]:
    """Find up to two appearances of the photo in the scanned image, localised: the second is
    fitted to the pairs the first left out (another copy beside it in a collage, or a region
    moved within it; ``decide`` tells which can speak for the image).

    ``pruned`` leaves out, before localising it (most of a verification's time), a second
    alignment that ``decide`` would not hear: one with fewer inliers over the place of a first
    that is credible (``_one_per_place``). Only where the signature's face box is final: a
    face box added later (``with_face``) can make the first not credible after all.
    """
    scanned = _mirrored_back(query) if mirrored else query.features
    query_xy, photo_xy, nearest = _tentative_pairs(scanned, signature.features, t)
    reference_xy = signature.features.xy
    instances: list[Instance] = []
    while len(instances) < 2 and len(query_xy) >= t.min_inliers:
        fitted = fit_transform(query_xy, photo_xy, mirrored, t)
        if fitted is None:
            break
        transform, inlier, residual = fitted
        inliers = min(_distinct_points(query_xy[inlier]), _distinct_points(photo_xy[inlier]))
        if inliers < t.min_inliers or residual > _residual_bound(query, transform, t):
            break
        if pruned and instances and _unheard(instances[0], transform, inliers, signature, t):
            break
        trusted = cells_holding(photo_xy[inlier], signature)
        if isinstance(query, SignatureQuery):
            instance = localise_grid(query, signature, transform, inliers, residual, t, trusted)
        else:
            instance = localise(query, signature, transform, inliers, residual, t, trusted)
        if instance is None:
            break
        frame = query.shape if isinstance(query, SignatureQuery) else query.work.shape[:2]
        found = alignment_evidence(
            scanned.xy,
            reference_xy,
            nearest,
            instance.transform,
            frame,
            signature.grid,
            instance.visible_cells,
            instance.agreeing_cells,
            t.ransac_pixels,
        )
        instances.append(replace(instance, evidence=found))
        left = ~inlier  # the next fit sees only what this one did not explain
        query_xy, photo_xy = query_xy[left], photo_xy[left]
    return instances


def _unheard(
    first: Instance, transform: np.ndarray, inliers: int, signature: Signature, t: Thresholds
) -> bool:
    """Whether ``decide`` would pass over a second alignment: fewer inliers than a credible
    first one, over its place."""
    return (
        inliers < first.inliers
        and _credible(first, t)
        and outlines_overlap(first.transform, transform, signature) >= PLACE_OVERLAP
    )


def _mirrored_back(query: Query | SignatureQuery) -> LocalFeatures:
    """The scanned image's mirror image's features, mapped back into its own frame: a photo
    keeps one orientation, so a mirrored copy pairs these with its features.

    ORB places a keypoint found at a coarser scale (a pyramid level, or the reduced image a
    scanned image's features are found on) at its coarse pixel's corner scaled up: half a
    coarse pixel left of its centre, as it places the photo's own. Mirrored, that half pixel
    falls on the right; so x maps to ``width - scale - x``, scale being the keypoint's size
    over ORB's patch, not to ``width - 1 - x``, which left mirrored copies about half a pixel
    off: on 60 flipped people reposts the registered face's cells agreed at 0.72 on average
    (0.82 with the photo's mirror image stored), against 0.98 so and 0.996 unflipped.
    """
    features = query.mirror_features()
    width = query.shape[1] if isinstance(query, SignatureQuery) else query.work.shape[1]
    xy = features.xy.copy()
    xy[:, 0] = width - features.size / PATCH_SIZE - xy[:, 0]
    return replace(features, xy=xy)


def _residual_bound(query: Query | SignatureQuery, transform: np.ndarray, t: Thresholds) -> float:
    """The median residual a copy stays within: ``max_median_residual``, widened (as the square
    root of the excess) where one pixel of the scanned image covers more than PRECISE_PIXELS
    pixels of the photo's frame.

    A copy's features land within about a pixel of the photo's; another shot of the same
    scene, a few pixels off where parallax or motion moved things, lands wider. But a small
    copy (a 96-pixel-wide thumbnail of a 192-pixel photo) locates its corners only to within
    its own, coarser pixels: measured on studio thumbnails at half size (4 frame pixels to a
    scanned pixel), copies' median residuals rose from about 1.0 to 1.3-1.8 pixels.
    """
    if isinstance(query, SignatureQuery):
        working_per_pixel = query.signature.frame_width / max(query.signature.width, 1)
    else:
        working_per_pixel = query.scale
    frame_per_pixel = math.sqrt(abs(float(np.linalg.det(transform[:2, :2])))) * working_per_pixel
    return t.max_median_residual * math.sqrt(max(1.0, frame_per_pixel / PRECISE_PIXELS))


def _distinct_points(xy: np.ndarray) -> int:
    """How many different points there are (float32 (n, 2) rows compared bit for bit, as
    ``np.unique(axis=0)`` compares them; one 64-bit word per point sorts about 8x faster)."""
    return len(np.unique(np.ascontiguousarray(xy, np.float32).view(np.int64)))


def _tentative_pairs(
    query: LocalFeatures, reference: LocalFeatures, t: Thresholds
) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Pairs of (scanned point, photo point) whose descriptors are near, and for every photo
    feature its two nearest scanned descriptors (distances, indices) for the evidence count.

    Each photo feature keeps its nearest scanned feature when it is clearly nearer than the
    second (the ratio test), and both when both are very near: a collage shows the same photo
    twice, and a plain ratio test would throw away exactly those pairs.
    """
    if len(query) < 2 or len(reference) == 0:
        none = np.zeros((len(reference), 2), np.int64)
        return np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32), (none, none)
    distance, nearest = two_nearest(reference.descriptors, query.descriptors)
    first, second = distance[:, 0], distance[:, 1]
    strong = 0.75 * t.max_descriptor_distance
    keep_first = (first <= t.max_descriptor_distance) & (
        (first < 0.85 * second) | (second <= strong)
    )
    keep = np.stack([keep_first, keep_first & (second <= strong)], axis=1)
    photo_idx = np.broadcast_to(np.arange(len(reference))[:, None], keep.shape)[keep]
    return query.xy[nearest[keep]], reference.xy[photo_idx], (distance, nearest)


def localise(
    query: Query,
    signature: Signature,
    transform: np.ndarray,
    inliers: int,
    residual: float,
    t: Thresholds,
    trusted: np.ndarray | None = None,
) -> Instance | None:
    """Compare the aligned scanned image with the photo's grid; None if too little is visible.

    ``trusted``: the grid cells holding the features that verified the alignment (see
    ``cells_holding``); they are unchanged, and anchor the contrast fit (cells.py)."""
    scanned, visible = scanned_cells(query.work, signature, transform)
    return _compared(signature, scanned, visible, transform, inliers, residual, t, trusted)


def localise_grid(
    query: SignatureQuery,
    signature: Signature,
    transform: np.ndarray,
    inliers: int,
    residual: float,
    t: Thresholds,
    trusted: np.ndarray | None = None,
) -> Instance | None:
    """Like :func:`localise`, with the scanned side's grid warped into the photo's grid."""
    warped, visible = grid_in_frame(query.signature, signature, transform)
    return _compared(signature, warped, visible, transform, inliers, residual, t, trusted)


def _compared(
    signature: Signature,
    scanned_cells: np.ndarray,
    visible: np.ndarray,
    transform: np.ndarray,
    inliers: int,
    residual: float,
    t: Thresholds,
    trusted: np.ndarray | None,
) -> Instance | None:
    """The instance an alignment gives, its cells compared with the photo's grid; None if too
    little of the photo is in view to say anything."""
    visible_share = float(visible.mean())
    if visible_share < t.min_visible:
        return None
    photo = dequantise(signature.grid)
    altered, agreeing, masked = compare_cells(photo, scanned_cells, visible, t, trusted)
    agreeing &= ~altered
    return Instance(
        transform=transform,
        inliers=inliers,
        residual=residual,
        visible=visible_share,
        altered_cells=altered,
        masked_cells=masked,
        altered_fraction=float(altered[visible].mean()),
        masked_fraction=float(masked[visible].mean()),
        agreeing=float(agreeing[visible].mean()),
        face_agreement=_face_agreement(signature, agreeing, visible),
        agreeing_cells=agreeing,
        visible_cells=visible,
        trusted_cells=trusted,
    )


def cells_holding(points: np.ndarray, signature: Signature) -> np.ndarray:
    """Which of the photo's grid cells hold any of ``points`` (photo frame): bool grid."""
    cols = np.clip((points[:, 0] * GRID_COLS / signature.frame_width).astype(int), 0, GRID_COLS - 1)
    rows = np.clip(
        (points[:, 1] * GRID_ROWS / signature.frame_height).astype(int), 0, GRID_ROWS - 1
    )
    cells = np.zeros((GRID_ROWS, GRID_COLS), bool)
    cells[rows, cols] = True
    return cells


def with_face(instance: Instance, signature: Signature) -> Instance:
    """The instance ``localise`` would have made had ``signature`` carried its face box then.

    The face box only reads the cells already compared, so an alignment localised without it
    (the face box being costly, pairs compute it only for photos something was verified to
    hold) needs no second look at the pixels.
    """
    return replace(
        instance,
        face_agreement=_face_agreement(signature, instance.agreeing_cells, instance.visible_cells),
    )


def _face_agreement(
    signature: Signature, agreeing: np.ndarray, visible: np.ndarray
) -> float | None:
    """The share of the registered face's cells that agree; None when no face is in view."""
    if len(signature.face) == 0:
        return None
    x, y, width, height = (int(v) for v in signature.face)
    col0, row0 = x * GRID_COLS // signature.frame_width, y * GRID_ROWS // signature.frame_height
    col1 = -(-(x + width) * GRID_COLS // signature.frame_width)
    row1 = -(-(y + height) * GRID_ROWS // signature.frame_height)
    face_visible = visible[row0:row1, col0:col1]
    if face_visible.mean() < 0.5:  # cropped away: the face can neither confirm nor refute
        return None
    return float(agreeing[row0:row1, col0:col1][face_visible].mean())


def _credible(instance: Instance, t: Thresholds) -> bool:
    """Whether an alignment shows the same photo rather than a coincidence or a look-alike.

    A regeneration of 60% of the photo leaves at most 40% to agree; when the registered face is
    among it and agrees, less of the rest is asked for. Without a face in view the higher share
    stands: the number of false alarms is measured on photos, and repeated drawn texture (the
    example images' stripes) can confirm features by chance more often than photos do.
    """
    face = instance.face_agreement
    floor = t.min_agreeing if face is None else t.min_agreeing_with_face
    return (
        instance.altered_fraction <= t.max_altered_fraction
        and instance.agreeing >= floor
        and (face is None or face >= t.min_face_agreement)
    )


def decide(
    photo_id: int,
    query: Query | SignatureQuery,
    signature: Signature,
    instances: list[Instance],
    t: Thresholds,
    *,
    registry_size: int = 1,
) -> Match | None:
    """Turn verified instances into a match, or None when the alignment was a coincidence.

    An instance counts only when its number of false alarms in a registry of
    ``registry_size`` photos is below ``evidence.MAX_NFA`` (an instance without counted
    evidence, made by hand, is judged by the other checks alone).
    """
    bound = math.log10(MAX_NFA)
    nfa = {id(i): _log10_nfa(i, registry_size) for i in instances}
    credible = _one_per_place(
        instances, lambda i: nfa[id(i)] <= bound, lambda i: _credible(i, t), signature
    )
    if not credible:
        return None
    inliers = max(i.inliers for i in credible)
    score = inliers / (inliers + t.min_inliers)
    log10_nfa = min(nfa[id(i)] for i in credible)
    copies = [i for i in credible if not _scene_goes_on(query, signature, i)]
    if not copies:
        return Match(photo_id, "same_scene", score, 0.0, inliers, credible, None, log10_nfa)
    credible = copies
    altered = [i for i in credible if i.altered_fraction >= t.manipulated_fraction]
    if not altered:
        return Match(photo_id, "repost", score, 0.0, inliers, credible, None, log10_nfa)
    mask = np.zeros(query.shape, np.uint8)
    for instance in altered:
        mask |= altered_mask(query, signature, instance)
    fraction = max(i.masked_fraction for i in altered)
    return Match(photo_id, "manipulated", score, fraction, inliers, credible, mask, log10_nfa)


def _one_per_place(
    instances: list[Instance],
    proven: Callable[[Instance], bool],
    credible: Callable[[Instance], bool],
    signature: Signature,
) -> list[Instance]:
    """The proven, credible instances, one per place of the scanned image.

    Over one place, the alignment with the most inliers speaks for it. The pairs it left out
    can align again close to it (those just beyond its reach) or, in another shot of a scene,
    on another plane: neither shows what it did not. Only where it proved the photo is there
    but is not credible may the next one speak: a region moved within a copy (a copy-move)
    can out-vote the rest of the photo. Instances side by side (a before/after) each hold a
    place of their own.
    """

    def together(a: Instance, b: Instance) -> bool:
        return outlines_overlap(a.transform, b.transform, signature) >= PLACE_OVERLAP

    kept: list[Instance] = []
    placed: list[Instance] = []
    for instance in sorted(instances, key=lambda i: -i.inliers):
        first = next((p for p in placed if together(instance, p)), None)
        placed.append(instance)
        if first is not None and (credible(first) or not proven(first)):
            continue
        if proven(instance) and credible(instance) and not any(together(instance, k) for k in kept):
            kept.append(instance)
    return kept


def _scene_goes_on(query: object, signature: Signature, instance: Instance) -> bool:
    """Whether the scanned image shows the scene going on beyond the photo's outline.

    A copy shows at most the photo: cropped, or set in something else, and that something is
    either framed off by a step along the photo's outline (a collage's other tile, a phone's
    interface, a border) or made from the photo itself (a blurred or mirrored copy filling a
    square). Another shot of the same scene shows new detail of its own beyond the outline,
    with no step (framing.py). A scanned image with more than SCENE_BEYOND of itself outside
    the photo, no seam and new detail there is a same-scene photo, however alike. Only pixels
    can show that: a scanned image known by its signature alone (or by its size, as pairs keep
    it once its pixels are gone) is not judged.
    """
    if not isinstance(query, Query):
        return False
    transform = instance.transform
    height, width = query.work.shape[:2]
    _, covered = frame_overlap(transform, width, height, signature)
    return (
        covered < 1.0 - SCENE_BEYOND
        and not has_seam(query.work, transform, signature)
        and scene_continues(query.work, transform, signature)
    )


def _log10_nfa(instance: Instance, registry_size: int) -> float:
    if instance.evidence is None:
        return -math.inf
    return instance.evidence.log10_nfa(registry_size)


def altered_mask(
    query: Query | SignatureQuery, signature: Signature, instance: Instance
) -> np.ndarray:
    """The masked cells drawn in the scanned image's own pixels (uint8, 255 = altered)."""
    frame = (signature.frame_width, signature.frame_height)
    return draw_cells(instance.masked_cells, frame, instance.transform, query.scale, query.shape)


def verify_and_decide(
    photo_id: int,
    query: Query | SignatureQuery,
    signature: Signature,
    mirrored: bool,
    t: Thresholds,
    *,
    registry_size: int,
    face: Callable[[], Signature] | None = None,
) -> Match | None:
    """``verify`` then ``decide``: the one chain every caller (scan, service, pairs) runs.

    ``face`` gives the signature with its face box when ``signature`` was made without
    it (pairs compute face boxes only for photos something was verified to hold): the
    alignments found are then judged with it, as if it had been there all along.
    """
    instances = verify(query, signature, mirrored, t, pruned=face is None)
    if not instances:
        return None
    if face is not None:
        signature = face()
        instances = [with_face(i, signature) for i in instances]
    return decide(photo_id, query, signature, instances, t, registry_size=registry_size)
