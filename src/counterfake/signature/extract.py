"""What is kept of a photo, and how a scanned image is prepared for matching.

A registered photo is reduced to a :class:`Signature`: its PDQ hash (for exchange with PDQ-based
programmes), local features of the photo, the coarse grid, and the box of its largest face. A
scanned image becomes a :class:`Query`: local features only, extracted at a larger working size so
that a registered photo shown small (inside a screenshot or a collage) still offers enough detail.

ORB is not mirror-invariant. A registered photo keeps the features of one orientation (what is
stored is kept small: signature/record.py); a mirrored copy is found with the features of the
scanned image's mirror image (:meth:`Query.mirror_features`), paired with the photo's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import cv2
import numpy as np

from counterfake.signature.faces import face_box
from counterfake.signature.features import LocalFeatures, OrbSettings, extract_features
from counterfake.signature.grid import cell_statistics, quantise
from counterfake.signature.pdq import PdqHash, pdq_dihedral_hashes

REFERENCE_SIDE = 512  # registered photos are analysed with their longer side at this size
REFERENCE_FEATURES = 512  # features found; the stored record keeps what fits (record.py)
QUERY_MAX_SIDE = 1024  # scanned images are analysed at most this large...
QUERY_MIN_SIDE = 512  # ...and at least this large, so small reposts meet the photo's finest scale
QUERY_FEATURES = 1000
# Features of a scanned image are found at 2/3 of its working size (never under QUERY_MIN_SIDE):
# a registered photo's finest level is REFERENCE_SIDE pixels, so a scanned photo of 768 pixels
# only meets it two pyramid levels down, and its two finest levels (half of ORB's work) found
# nothing the registry holds. A composite of 1024 pixels still shows a photo in it at 2/3 or more
# of its side near REFERENCE_SIDE.
QUERY_FEATURE_SHRINK = 1.5
# A scanned image's pyramid steps by 1.3 over six levels: it spans the scales of the registered
# photo's eight levels (1.2 apart), each level within a factor 1.1 of one of them, over 30% fewer
# pixels. Its faintest corners (FAST 10-15) are left out: they survive recompression least.
# ORB keeps just the QUERY_FEATURES a scanned image uses, with no spares for the spread
# selection to choose among (a registered photo's stored features keep theirs): spares cost a
# third of ORB's work per corner (Harris score, orientation, descriptor) and of reading the
# keypoints, and the features kept are still dealt out in spread order, so those that vote in the
# index (a prefix) stay spread over the image and its scales.
QUERY_ORB = OrbSettings(scale_factor=1.3, levels=6, fast_threshold=15, detected_per_kept=1.0)


@dataclass(frozen=True)
class Signature:
    """Everything counterfake keeps of a registered photo: no pixels, no thumbnail."""

    label: str
    sha256: str
    width: int  # the photo as decoded (EXIF rotation applied)
    height: int
    frame_width: int  # the working frame in which features and grid were computed
    frame_height: int
    pdq: dict[str, PdqHash]  # Meta's eight dihedral hashes, "original" first
    features: LocalFeatures
    grid: np.ndarray  # uint8 (GRID_ROWS, GRID_COLS, 4), see grid.py
    face: np.ndarray  # int32 [x, y, width, height] in the frame, or empty: see faces.py
    # Features of the horizontally mirrored frame, in mirrored coordinates: only in a signature
    # made to be matched as a scanned image (``make_signature(mirror=True)``), never stored.
    mirrored: LocalFeatures = field(default_factory=LocalFeatures.empty)


@dataclass(frozen=True)
class Query:
    """A scanned image ready for matching; ``work`` is the image at the working size."""

    rgb: np.ndarray
    work: np.ndarray
    scale: float  # working pixels per original pixel
    features: LocalFeatures

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the scanned image, the frame its mask is drawn in."""
        return self.rgb.shape[:2]

    def mirror_features(self) -> LocalFeatures:
        """The local features of the image's mirror image, in mirrored working-frame pixels:
        the indexes hold one orientation of each photo, and a mirrored copy is found and
        verified with these. A second ORB pass, made once, on demand."""
        return self._mirror_features

    @cached_property
    def _mirror_features(self) -> LocalFeatures:
        return query_features(np.ascontiguousarray(grey(self.work)[:, ::-1]))


def resize_longer_side(rgb: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    """Resize so the longer side is ``side`` pixels; return the image and the scale factor."""
    height, width = rgb.shape[:2]
    scale = side / max(height, width)
    if scale == 1.0:
        return rgb, 1.0
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(rgb, size, interpolation=interpolation), scale


def grey(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def make_signature(
    rgb: np.ndarray,
    label: str,
    sha256: str,
    *,
    exchange: bool = True,
    face: bool = True,
    feature_count: int = REFERENCE_FEATURES,
    mirror: bool = False,
) -> Signature:
    """Compute the signature of a decoded photo (HxWx3 uint8 RGB).

    ``feature_count`` features are kept per orientation: a video's frames keep fewer. The
    mirror image's features are computed only with ``mirror``: for a signature that will be
    matched as a scanned image (pairs, client-side signatures); a registered photo needs none.

    Pairs within a collection need neither the PDQ hashes (``exchange``: they are for other
    programmes) nor, up front, the face box, the costliest part: ``face=False`` leaves it empty
    for ``reference_face`` to fill in only for the photos that a verification needs it for.
    """
    frame, _ = resize_longer_side(rgb, REFERENCE_SIDE)
    frame_grey = grey(frame)
    return Signature(
        label=label,
        sha256=sha256,
        width=rgb.shape[1],
        height=rgb.shape[0],
        frame_width=frame.shape[1],
        frame_height=frame.shape[0],
        pdq=pdq_dihedral_hashes(rgb) if exchange else {},
        features=extract_features(frame_grey, feature_count),
        grid=quantise(cell_statistics(frame)),
        face=face_box(frame) if face else np.zeros(0, np.int32),
        mirrored=(
            extract_features(np.ascontiguousarray(frame_grey[:, ::-1]), feature_count)
            if mirror
            else LocalFeatures.empty()
        ),
    )


def reference_face(rgb: np.ndarray) -> np.ndarray:
    """The face box ``make_signature`` would keep for this photo, in its reference frame."""
    frame, _ = resize_longer_side(rgb, REFERENCE_SIDE)
    return face_box(frame)


def make_query(rgb: np.ndarray, *, features: bool = True) -> Query:
    """Prepare a decoded scanned image (HxWx3 uint8 RGB) for matching.

    ``features=False`` skips the local features: enough to localise an alignment already found.
    """
    longer = max(rgb.shape[:2])
    side = min(max(longer, QUERY_MIN_SIDE), QUERY_MAX_SIDE)
    work, scale = resize_longer_side(rgb, side)
    found = query_features(grey(work)) if features else LocalFeatures.empty()
    return Query(rgb=rgb, work=work, scale=scale, features=found)


def query_features(work_grey: np.ndarray) -> LocalFeatures:
    """The local features of a scanned image, found at a reduced size, in working-frame pixels."""
    longer = max(work_grey.shape[:2])
    side = max(QUERY_MIN_SIDE, round(longer / QUERY_FEATURE_SHRINK))
    if side >= longer:
        return extract_features(work_grey, QUERY_FEATURES, QUERY_ORB)
    height, width = work_grey.shape[:2]
    size = (max(1, round(width * side / longer)), max(1, round(height * side / longer)))
    # Bilinear, as ORB builds its own pyramid: area averaging costs a fifth of ORB here.
    small = cv2.resize(work_grey, size, interpolation=cv2.INTER_LINEAR)
    found = extract_features(small, QUERY_FEATURES, QUERY_ORB)
    return found.scaled(work_grey.shape[1] / small.shape[1], work_grey.shape[0] / small.shape[0])
