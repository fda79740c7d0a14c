"""The one result model: what a scan or a pairs run found, as every face renders it.

The command line's JSON, the CSV, the HTML report, the evidence manifest, the service and the
benchmarks all read these classes, and each class turns itself into JSON in one place
(``to_json``), so a figure is rounded once and a field is named once.

- ``Finding``: a registered photo found in a scanned file (``counterfake scan``, the service).
- ``Pair``: an image of a collection made from another one (``counterfake pairs``).
- ``FileResult``: one scanned file and what was found in it, or why it could not be read.
- ``Cluster`` and ``PairsDocument``: the groups and the whole answer of ``counterfake pairs``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

from counterfake.inputs import item_key
from counterfake.matching import Kind
from counterfake.sources.telegram import ExportEntry

__all__ = [
    "Cluster",
    "FileResult",
    "Finding",
    "FindingKind",
    "Kind",
    "Media",
    "Pair",
    "PairsDocument",
    "PictureFile",
    "TimeRange",
]

FindingKind = Literal[Kind, "contains_photo"]
"""A finding's kind: a photo's, or ``contains_photo``, a registered photo shown in a video."""

Media = Literal["photo", "video"]
"""What a video's finding found: a registered photo or a registered video."""

Direction = Literal[
    "composition",
    "crop",
    "resolution",
    "Telegram date",
    "cluster order",
    "coverage",
    "shown in video",
]
"""Why a pair's source is taken to be the source (docs/pairs.md; ``coverage`` for videos,
``shown in video`` for a photo a video shows)."""

SCORE_DIGITS = 4  # scores and altered fractions are reported to four decimals
NFA_DIGITS = 3  # the number of false alarms, to three significant digits


class Measured(Protocol):
    """What matching measured of one alignment (a ``matching.Match`` or a pairs relation)."""

    @property
    def kind(self) -> FindingKind: ...
    @property
    def score(self) -> float: ...
    @property
    def nfa(self) -> float: ...
    @property
    def altered_fraction(self) -> float: ...
    @property
    def inliers(self) -> int: ...


class Span(Protocol):
    """A stretch of a scanned video and of what it shows (video.timeline.Segment)."""

    @property
    def scan(self) -> tuple[float, float]: ...
    @property
    def registered(self) -> tuple[float, float]: ...


class MeasuredInVideo(Measured, Protocol):
    """What matching measured of a registered photo or video in a scanned video (a
    ``video.matching.VideoMatch``)."""

    @property
    def is_photo(self) -> bool: ...
    @property
    def frame_time(self) -> float: ...
    @property
    def segments(self) -> Sequence[Span]: ...


class ImportedRecord(Protocol):
    """A hash imported from a sharing programme (``video.exchange.ImportedVpdq``)."""

    @property
    def name(self) -> str: ...
    @property
    def source(self) -> str: ...


class ImportedMatch(Protocol):
    """A scanned video matched by an imported hash (``video.exchange.VpdqHit``)."""

    @property
    def record(self) -> ImportedRecord: ...
    @property
    def score(self) -> float: ...
    @property
    def scan(self) -> tuple[float, float]: ...


def rounded_score(value: float) -> float:
    """A score or a fraction as reported."""
    return round(value, SCORE_DIGITS)


def rounded_nfa(value: float) -> float:
    """A number of false alarms as reported."""
    return float(f"{value:.{NFA_DIGITS}g}")


@dataclass(frozen=True)
class TimeRange:
    """Where a video match is: seconds of the scanned video (``scan``), and of the registered
    video it shows (``registered``; None when what it shows is a photo)."""

    scan: tuple[float, float]
    registered: tuple[float, float] | None = None

    def to_json(self) -> dict[str, list[float]]:
        if self.registered is None:
            return {"scan": list(self.scan)}
        return {"scan": list(self.scan), "registered": list(self.registered)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TimeRange:
        start, end = data["scan"]
        registered = data.get("registered")
        return cls((start, end), None if registered is None else (registered[0], registered[1]))


def _video_json(
    media: Media | None, frame_time: float | None, segments: Sequence[TimeRange] | None
) -> dict[str, Any]:
    """A video match's extra fields as reported (none for a photo's)."""
    extra: dict[str, Any] = {}
    if media is not None:
        extra["media"] = media
    if frame_time is not None:
        extra["frame_time"] = frame_time
    if segments is not None:
        extra["segments"] = [part.to_json() for part in segments]
    return extra


def _segments_of(data: dict[str, Any]) -> tuple[TimeRange, ...] | None:
    parts = data.get("segments")
    return None if parts is None else tuple(TimeRange.from_json(part) for part in parts)


def reported(measured: Measured) -> dict[str, Any]:
    """What every finding and pair reports of a match: its kind and figures, rounded."""
    return {
        "kind": measured.kind,
        "score": rounded_score(measured.score),
        "nfa": rounded_nfa(measured.nfa),
        "altered_fraction": rounded_score(measured.altered_fraction),
        "inliers": measured.inliers,
    }


@dataclass(frozen=True)
class Finding:
    """A registered photo found in a scanned file.

    ``mask`` is the path of the altered region's PNG (in the scanned image's pixels), or None;
    the service puts the PNG itself there, base64-encoded.

    A finding in a video (docs/video.md) also has ``media`` (a registered photo or video was
    found), ``frame_time`` (the scanned frame where it was seen best, whose pixels the mask is
    in) and ``segments`` (where, in both videos); they are None for a photo's finding and then
    left out of its JSON.

    A finding of a hash imported from a sharing programme has ``signal`` (``vpdq``): it rests on
    that hash alone, so it has no ``nfa`` (None, left out of its JSON) and no alignment.
    """

    photo: str
    subject: str
    kind: FindingKind
    score: float
    nfa: float | None
    altered_fraction: float
    mask: str | None
    inliers: int
    instances: int
    media: Media | None = None
    frame_time: float | None = None
    segments: tuple[TimeRange, ...] | None = None
    signal: str | None = None

    @classmethod
    def of(
        cls, match: Measured, *, photo: str, subject: str, mask: str | None, instances: int
    ) -> Finding:
        """The finding for one match, its figures rounded as reported."""
        return cls(photo=photo, subject=subject, mask=mask, instances=instances, **reported(match))

    @classmethod
    def of_video(
        cls, match: MeasuredInVideo, *, photo: str, subject: str, mask: str | None
    ) -> Finding:
        """The finding for a match in a video: a photo's fields (one instance a segment),
        the time of the frame where it was seen best, and its segments (a registered photo
        has no registered range)."""
        return cls(
            photo=photo,
            subject=subject,
            mask=mask,
            instances=len(match.segments),
            media="photo" if match.is_photo else "video",
            frame_time=round(match.frame_time, 3),
            segments=tuple(
                TimeRange(s.scan, None if match.is_photo else s.registered) for s in match.segments
            ),
            **reported(match),
        )

    @classmethod
    def of_imported_video(cls, hit: ImportedMatch, *, signal: str) -> Finding:
        """A scanned video found by a hash imported from a sharing programme alone
        (``signal``): a repost as far as the hash can tell, naming the imported record, with
        no alignment (no ``nfa``, ``inliers`` 0, no mask) and no registered range."""
        start, end = hit.scan
        return cls(
            photo=hit.record.name,
            subject=f"imported from {hit.record.source}",
            kind="repost",
            score=rounded_score(hit.score),
            nfa=None,
            altered_fraction=0.0,
            mask=None,
            inliers=0,
            instances=1,
            media="video",
            frame_time=round(start, 3),
            segments=(TimeRange((round(start, 3), round(end, 3))),),
            signal=signal,
        )

    @property
    def is_video(self) -> bool:
        """Whether this was found in a video (it then has segments and a frame time)."""
        return self.segments is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "photo": self.photo,
            "subject": self.subject,
            "kind": self.kind,
            "score": self.score,
            **({} if self.nfa is None else {"nfa": self.nfa}),
            "altered_fraction": self.altered_fraction,
            "mask": self.mask,
            "inliers": self.inliers,
            "instances": self.instances,
            **_video_json(self.media, self.frame_time, self.segments),
            **({} if self.signal is None else {"signal": self.signal}),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Finding:
        """The finding as ``to_json`` wrote it; a journal from before ``nfa`` was recorded
        reads as 0 (an imported hash's finding has none)."""
        return cls(
            photo=data["photo"],
            subject=data["subject"],
            kind=data["kind"],
            score=data["score"],
            nfa=data.get("nfa", None if "signal" in data else 0.0),
            altered_fraction=data["altered_fraction"],
            mask=data.get("mask"),
            inliers=data["inliers"],
            instances=data["instances"],
            media=data.get("media"),
            frame_time=data.get("frame_time"),
            segments=_segments_of(data),
            signal=data.get("signal"),
        )


@dataclass(frozen=True)
class Pair:
    """``derivative`` was made from ``source``: both are images of the collection (paths).

    ``mask`` is in the derivative's pixels; None when there is none, or when the relation was
    measured the other way round (in the source's pixels). ``cluster`` is the id of the
    cluster it belongs to.

    A pair of videos (video/pairs.py) has ``media`` "video" and ``segments`` (in the
    derivative's time, then the source's), no ``nfa`` or ``inliers`` (None, left out of its
    JSON), and the direction ``coverage``.
    """

    source: str
    derivative: str
    kind: FindingKind
    score: float
    nfa: float | None
    altered_fraction: float
    mask: str | None
    inliers: int | None
    direction: Direction
    cluster: int
    media: Media | None = None
    segments: tuple[TimeRange, ...] | None = None

    @classmethod
    def of(
        cls,
        measured: Measured,
        *,
        source: str,
        derivative: str,
        mask: str | None,
        direction: Direction,
        cluster: int,
    ) -> Pair:
        """The pair for one verified relation, its figures rounded as reported."""
        return cls(
            source=source,
            derivative=derivative,
            mask=mask,
            direction=direction,
            cluster=cluster,
            **reported(measured),
        )

    def to_json(self) -> dict[str, Any]:
        if self.segments is not None:  # a pair of videos, its fields as video/pairs.py orders them
            return {
                "source": self.source,
                "derivative": self.derivative,
                "kind": self.kind,
                "score": self.score,
                **({} if self.nfa is None else {"nfa": self.nfa}),
                "altered_fraction": self.altered_fraction,
                "mask": self.mask,
                **({} if self.inliers is None else {"inliers": self.inliers}),
                **_video_json(self.media, None, self.segments),
                "direction": self.direction,
                "cluster": self.cluster,
            }
        return {
            "source": self.source,
            "derivative": self.derivative,
            "kind": self.kind,
            "score": self.score,
            "nfa": self.nfa,
            "altered_fraction": self.altered_fraction,
            "mask": self.mask,
            "inliers": self.inliers,
            "direction": self.direction,
            "cluster": self.cluster,
            **_video_json(self.media, None, None),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Pair:
        """The pair as ``to_json`` wrote it."""
        return cls(
            source=data["source"],
            derivative=data["derivative"],
            kind=data["kind"],
            score=data["score"],
            nfa=data.get("nfa"),
            altered_fraction=data["altered_fraction"],
            mask=data.get("mask"),
            inliers=data.get("inliers"),
            direction=data["direction"],
            cluster=data["cluster"],
            media=data.get("media"),
            segments=_segments_of(data),
        )


@dataclass
class FileResult:
    """What scanning one file found; ``error`` is set when the file could not be read.

    ``context`` says where an image came from when a source knows more than its path (a
    Telegram export: chat, message, sender); it is None for plain files. The findings of a
    pairs run are the pairs in which the file is the derivative.
    """

    path: str
    sha256: str | None = None
    error: str | None = None
    matches: Sequence[Finding | Pair] = field(default_factory=list)
    context: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "sha256": self.sha256,
            "error": self.error,
            "matches": [match.to_json() for match in self.matches],
            "context": self.context,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FileResult:
        """The result as ``to_json`` wrote it (a journal line, a saved document)."""
        matches = [
            Pair.from_json(match) if "derivative" in match else Finding.from_json(match)
            for match in data.get("matches") or []
        ]
        return cls(
            data["path"], data.get("sha256"), data.get("error"), matches, data.get("context")
        )

    @property
    def key(self) -> str:
        """The scanned item's ``inputs.item_key``: what a resumed scan skips."""
        return item_key(ExportEntry(self.path, self.context) if self.context else self.path)


@dataclass(frozen=True)
class Cluster:
    """An original photo of the collection and every image made from it (paths), the original
    first. ``affected``: whether it counts as a photo affected (see
    ``pairs.grouping.affected_clusters``); ``scene``: its scene number, when it counts."""

    id: int
    original: str
    members: list[str]
    affected: bool
    scene: int | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PictureFile:
    """One image of a pairs run as the document lists it."""

    path: str
    sha256: str | None
    context: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PairsDocument:
    """The answer of ``counterfake pairs`` (its JSON: docs/pairs.md)."""

    tool: str
    images: int
    errors: list[dict[str, str]]
    pairs: list[Pair]
    clusters: list[Cluster]
    photos_affected: int
    scenes: int
    files: list[PictureFile]
    telegram: list[dict[str, Any]] | None = None  # what each Telegram export held, if any
    videos: int | None = None  # how many of the images are videos, when any were given

    def to_json(self) -> dict[str, Any]:
        document = {
            "tool": self.tool,
            "images": self.images,
            "errors": self.errors,
            "pairs": [pair.to_json() for pair in self.pairs],
            "clusters": [cluster.to_json() for cluster in self.clusters],
            "photos_affected": self.photos_affected,
            "scenes": self.scenes,
            "files": [file.to_json() for file in self.files],
        }
        if self.telegram is not None:
            document["telegram"] = self.telegram
        if self.videos is not None:
            document["videos"] = self.videos
        return document

    def file_results(self) -> Iterator[FileResult]:
        """One scan-like result per file, its findings the pairs it is the derivative of: the
        form the evidence manifest records."""
        found: dict[str, list[Pair]] = defaultdict(list)
        for pair in self.pairs:
            found[pair.derivative].append(pair)
        errors = {e["path"]: e["error"] for e in self.errors}
        for file in self.files:
            yield FileResult(
                file.path,
                file.sha256,
                errors.get(file.path),
                found.get(file.path, []),
                file.context,
            )
