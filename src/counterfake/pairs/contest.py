"""The overlay contest: which of a group's untouched copies is the photo the others were made
from, read from the signatures' grids aligned to one frame (no image is decoded again)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

import numpy as np

from counterfake.aligned import grid_in_frame
from counterfake.cells import cell_differences
from counterfake.framing import frame_overlap
from counterfake.matching import SignatureQuery, verify
from counterfake.pairs.model import COMPOSITION_COVER, RESOLUTION_STEP
from counterfake.pairs.sets import DisjointSets
from counterfake.signature.extract import Signature
from counterfake.signature.grid import dequantise
from counterfake.thresholds import Thresholds

DISPUTE_MULTIPLE = 3.0  # cells where two contenders differ this many times their median
MIN_DISPUTED = 3  # disputed cells a witness must see to take sides


class OverlayContest:
    """How many of the others each contender beats, over a collection's signatures.

    Every image is aligned to the first contender's frame by verifying its signature there;
    alignments, cell differences and answers are kept, since a group is ranked again after
    each pass that adds relations.
    """

    def __init__(self, signatures: Mapping[int, Signature], thresholds: Thresholds) -> None:
        self.signatures = signatures
        self.thresholds = thresholds
        self._answers: dict[tuple, dict[int, int]] = {}
        self._transforms: dict[tuple[int, int], np.ndarray | None] = {}  # image -> contender
        self._differences: dict[int, dict[tuple[int, int], np.ndarray]] = {}  # by reference

    def __call__(self, contenders: list[int], witnesses: list[int]) -> dict[int, int]:
        """How many of the others each contender beats in ``overlay_contest``.

        Read from the signatures alone (no image is decoded): every image is aligned to the
        first contender's frame by verifying its signature there. Among the contenders that
        show the same frame as that one (each shows nearly all of the other), one that shows
        the photo with RESOLUTION_STEP times fewer pixels (linear) than another was resized
        down, as the resolution vote would have said had their relation been verified: it
        takes no part in the comparison (a downscale blurs only what the grid does not keep),
        and loses to each contender with that many more pixels. A contender whose frame holds
        more than the photo (a screenshot, a border) is not compared by its pixel count: a
        screen enlarges the photo it shows, and the resolution vote asks the same.
        """
        asked = (tuple(contenders), tuple(witnesses))
        if asked not in self._answers:
            reference = self.signatures[contenders[0]]
            grids = {}
            for key in (*contenders, *witnesses):
                aligned = self._aligned(key, contenders[0], reference)
                if aligned is not None:
                    grids[key] = aligned
            present = [key for key in contenders if key in grids]
            density = {  # of the contenders that show the first one's frame
                key: d
                for key in present
                if (d := self._density(key, contenders[0], reference)) is not None
            }
            finest = max(density.values(), default=0.0)
            resized = [key for key in density if density[key] * RESOLUTION_STEP < finest]
            present = [key for key in present if key not in resized]
            known = self._differences.setdefault(contenders[0], {})  # on this one's grid
            wins = overlay_contest(present, grids, self.thresholds, known)
            for key in density.keys() - resized:  # each beats the copies resized down from it
                wins[key] += sum(density[key] >= RESOLUTION_STEP * density[r] for r in resized)
            self._answers[asked] = dict(wins)
        return self._answers[asked]

    def _density(self, key: int, reference_key: int, reference: Signature) -> float | None:
        """Image ``key``'s pixels per reference pixel (linear) of the content they share; None
        when the two do not show the same frame (each nearly all of the other)."""
        if key == reference_key:
            return 1.0
        signature = self.signatures[key]
        transform = self._transforms[key, reference_key]
        if transform is None:  # not aligned: it has no grid in the contest either
            return None
        shown, covered = frame_overlap(
            transform, signature.frame_width, signature.frame_height, reference
        )
        if min(shown, covered) < COMPOSITION_COVER:
            return None
        stretch = float(np.sqrt(abs(np.linalg.det(transform[:2, :2]))))  # key frame -> reference
        own = signature.width / signature.frame_width  # image pixels per frame pixel
        return own / stretch / (reference.width / reference.frame_width)

    def _aligned(
        self, key: int, reference_key: int, reference: Signature
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """(image ``key``'s grid in the reference's cells, the cells it covers); None when its
        signature is not verified in the reference, either way round."""
        if key == reference_key:
            return dequantise(reference.grid), np.ones(reference.grid.shape[:2], bool)
        signature = self.signatures[key]
        if (key, reference_key) not in self._transforms:
            self._transforms[key, reference_key] = self._transform(signature, reference)
        transform = self._transforms[key, reference_key]
        return None if transform is None else grid_in_frame(signature, reference, transform)

    def _transform(self, signature: Signature, reference: Signature) -> np.ndarray | None:
        """Where ``signature``'s frame lies in the reference's, verified either way round."""
        for mirrored in (False, True):
            found = verify(SignatureQuery(signature), reference, mirrored, self.thresholds)
            if found:
                return found[0].transform
        return None


def overlay_contest(
    contenders: list[int],
    grids: Mapping[int, tuple[np.ndarray, np.ndarray]],
    thresholds: Thresholds,
    known: dict[tuple[int, int], np.ndarray] | None = None,
) -> dict[int, int]:
    """How many of the other contenders each one beats, on grids aligned to one frame.

    A copy is made from the original once: an overlay (a watermark, a caption, a logo, an
    interface) or an edit is present in that copy alone, while the original and every other
    copy made from it agree there. So for two contenders A and B, the cells where they differ
    clearly (DISPUTE_MULTIPLE times their median difference) are disputed, and each other
    image of the group (the rest of the contenders and the witnesses) takes the side of the
    one it is nearer to over those cells: the one most sides with wins the pair, a sign test
    over third parties rather than a mean over different relations. Two contenders that show
    the same frame and dispute no cell (the photo and a re-save of it) are one picture: each
    counts the wins of the other, so that the noise of the sign test between a third copy and
    each of them cannot rank one re-save above the other (the finer save is chosen later).
    ``grids`` maps each image to (its cells in the common frame, the cells it covers);
    ``known`` keeps the cell differences of images with contenders measured on the same grids
    by an earlier contest (a group is ranked again after each pass that adds relations).
    """
    differences = {} if known is None else known
    for contender in contenders:
        for image, (cells, seen) in grids.items():
            if image != contender and (image, contender) not in differences:
                differences[image, contender] = _cell_difference(
                    cells, grids[contender][0], seen & grids[contender][1], thresholds
                )
    wins: dict[int, int] = defaultdict(int)
    same = DisjointSets(contenders)
    for number, a in enumerate(contenders):
        for b in contenders[number + 1 :]:
            sides = _sides(a, b, grids, differences)
            if sides is None:
                same.join(a, b)
            elif sides:
                wins[a if sides > 0 else b] += 1
    shared = {key: max(wins[other] for other in same.members(key)) for key in contenders}
    return defaultdict(int, {key: count for key, count in shared.items() if count})


def _sides(
    a: int,
    b: int,
    grids: Mapping[int, tuple[np.ndarray, np.ndarray]],
    differences: Mapping[tuple[int, int], np.ndarray],
) -> int | None:
    """Witnesses that resemble ``a`` over the cells the two dispute, less those that resemble
    ``b``; None when the two show the same frame and dispute no cell.
    ``differences[image, contender]``: each cell's difference between the two, in units
    of what matching calls altered.

    The disputed cells differ clearly: DISPUTE_MULTIPLE times the two's median difference, and
    at least by one unit. Between the photo and a re-save of it, no cell differs that much
    (recompression moves cells by a fraction of a unit, and all of them a little), so neither
    wins: nothing in the grid tells which was saved first.

    A witness testifies only when it lies nearer to one of the two than halfway between them:
    one altered there itself (an edit, a flip aligned a little off, a screenshot's rescaling)
    is far from both, and which of the two it happens to be nearer to says nothing of them
    (a white caption over a dark garment is nearer to any lightened edit of that garment).
    """
    both = grids[a][1] & grids[b][1]
    if not both.any():
        return 0
    apart = differences[b, a]
    clearly = max(DISPUTE_MULTIPLE * float(np.median(apart[both])), 1.0)
    disputed = both & (apart > clearly)
    if disputed.sum() < MIN_DISPUTED and both.mean() >= COMPOSITION_COVER:
        return None
    sides = 0
    for witness, (_, seen) in grids.items():
        where = disputed & seen
        if witness in (a, b) or where.sum() < MIN_DISPUTED:
            continue
        to_a = differences[witness, a][where].mean()
        to_b = differences[witness, b][where].mean()
        if min(to_a, to_b) < apart[where].mean() / 2:
            sides += int(to_a < to_b) - int(to_b < to_a)
    return sides


def _cell_difference(
    scanned: np.ndarray, photo: np.ndarray, visible: np.ndarray, thresholds: Thresholds
) -> np.ndarray:
    """Each cell's difference, colour and texture each in units of the difference that
    ``matching`` would call altered."""
    colour, texture = cell_differences(photo, scanned, visible)
    difference = colour / thresholds.colour_difference + texture / thresholds.texture_difference
    return np.nan_to_num(difference, nan=0.0)
