"""One verified relation between two images: how the source lies in the derivative, and
whether their agreement rests on textured content."""

from __future__ import annotations

import numpy as np

from counterfake.evidence import TEXTURED_CONTRAST
from counterfake.framing import frame_overlap, has_seam
from counterfake.matching import Match
from counterfake.pairs.model import COMPOSITION_COVER, Geometry
from counterfake.signature.extract import Query, Signature
from counterfake.signature.grid import dequantise

MIN_TEXTURED_AGREEING = 0.15  # share of the source's visible cells textured and agreeing


def geometry(query: Query, transform: np.ndarray, signature: Signature) -> Geometry:
    """How the source lies in the derivative under ``transform`` (see ``Geometry``)."""
    height, width = query.work.shape[:2]
    shown, covered = frame_overlap(transform, width, height, signature)
    stretch = float(np.sqrt(abs(np.linalg.det(transform[:2, :2]))))
    resolution = 1.0 / (stretch * query.scale) / (signature.width / signature.frame_width)
    seam = covered < COMPOSITION_COVER and has_seam(query.work, transform, signature)
    mirrored = float(np.linalg.det(transform[:2, :2])) < 0
    return Geometry(shown, covered, resolution, seam, mirrored)


def textured_agreement(match: Match, signature: Signature) -> bool:
    """Whether the agreement rests on textured content, not on plain areas.

    A registered photo is a photo; in a collection any image can be the source, screenshots
    included, and two screenshots of one app agree on its white screen and its interface, with
    different photos in them. Plain cells agree with anything, so a pair also needs
    MIN_TEXTURED_AGREEING of the source's visible cells to be textured and to agree; the
    figures that set it are in docs/pairs.md.
    """
    textured = dequantise(signature.grid)[:, :, 3] >= TEXTURED_CONTRAST
    return any(
        float((i.agreeing_cells & textured)[i.visible_cells].mean()) >= MIN_TEXTURED_AGREEING
        for i in match.instances
        if i.agreeing_cells is not None and i.visible_cells is not None and i.visible_cells.any()
    )
