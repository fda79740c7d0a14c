"""What the pairs passes know of a collection: its pictures, the relations verified between
them, and the clusters they are grouped into (image keys; results.py holds what is reported).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from counterfake.matching import Instance, Kind
from counterfake.signature.extract import Signature

COMPOSITION_COVER = 0.85  # below this share of an image covered by the other, it holds more
RESOLUTION_STEP = 1.25  # a copy this much smaller (linear) than the other is the derivative
STRONG_OVERLAP = 0.5  # two copies of one photo each show at least this much of the other


@dataclass
class Picture:
    """One image of the collection: where it is shown, where it is read, what it holds."""

    key: int
    path: str  # as shown to the reader (an export entry's path)
    file: str | None  # the file to open; None when it could not be listed
    context: dict[str, Any] | None = None
    sha256: str | None = None
    error: str | None = None
    signature: Signature | None = None
    bytes_per_pixel: float = 0.0
    quantisation: float = 0.0  # mean JPEG luminance quantiser (0: not JPEG); lower is finer


@dataclass
class Relation:
    """``derivative`` was verified to hold ``source``: the match, measured in the derivative."""

    source: int
    derivative: int
    kind: Kind
    score: float
    altered_fraction: float
    inliers: int
    mask: str | None
    shown: float  # share of the source's frame that lies inside the derivative
    covered: float  # share of the derivative's frame that the source covers
    resolution: float  # derivative's pixels per source pixel of the shared content
    seam: bool  # the source's outline is drawn in the derivative as a straight edge
    mirrored: bool  # the derivative shows the source flipped
    agreeing: float  # share of the source's visible cells that agree in the derivative
    nfa: float = 0.0  # expected chance alignments as good as this one; see evidence.py


@dataclass(frozen=True)
class Frame:
    """What deciding on an alignment and drawing its mask need of a scanned image once its
    pixels are gone: its size and its working scale (a stand-in for a ``Query``)."""

    shape: tuple[int, int]
    scale: float


@dataclass(frozen=True)
class Geometry:
    """How one alignment of a source lies in a derivative (what ``grouping.direction`` reads)."""

    shown: float  # share of the source's frame that lies inside the derivative
    covered: float  # share of the derivative's frame that the source covers
    resolution: float  # derivative's pixels per source pixel of the shared content
    seam: bool  # the source's outline is drawn in the derivative as a straight edge
    mirrored: bool  # the derivative shows the source flipped


@dataclass
class Tentative:
    """``source`` verified in ``derivative`` without the source's face box, with all that
    deciding again with it needs, so that the derivative is not read a second time."""

    source: int
    derivative: int
    frame: Frame
    instances: list[Instance]
    geometry: list[Geometry]  # one per instance


@dataclass
class Collection:
    """What the passes found, before ordering and grouping."""

    pictures: list[Picture]
    relations: dict[tuple[int, int], Relation] = field(default_factory=dict)  # (src, deriv)
    candidates: dict[int, list[int]] = field(default_factory=dict)


@dataclass
class Cluster:
    """An original and every image made from it (image keys, the original among them)."""

    original: int
    members: set[int]


Reason = Literal["composition", "crop", "resolution", "Telegram date", "undetermined"]
Edge = tuple[int, Reason]
"""How two related images are ordered: +1 when the lower key is the source, -1 the reverse,
0 unknown; and why."""


@dataclass
class Organisation:
    """What ``grouping.organise`` made of a collection.

    ``edges``: each related pair of images (a frozenset of two keys) and how it is ordered.
    ``unmeasured``: the (source, derivative) verifications that would settle what the
    relations found so far leave open (see ``organise``).
    """

    edges: dict[frozenset[int], Edge]
    clusters: list[Cluster]
    pictures: dict[int, Picture]
    unmeasured: list[tuple[int, int]]
