"""Videos in ``counterfake pairs``: which videos of a collection show the same footage (a
repost, a trim, a clip cut into a compilation), grouped into clusters, with no registry.

Every video is treated as if registered: its signature (video/signature.py) goes into an
in-process index, and every video is then scanned against the others with the same chain as a
scan (video/matching.py: each sampled frame verified and decided, hits chained into segments).
A video never matches itself.

Which of two related videos is the source: the one less covered by the other. A trim shows
nothing but the original, so all of it is covered; the original shows more than the trim. When
both are covered alike (a re-encode), the one with more bytes a second is taken as the source
(re-encoding loses quality). A cluster is a group of related videos; its original is the
member that is never a derivative (the first such, if several). A compilation that covers as
little of itself as the clip it takes from can be given the wrong direction; the cluster is
right either way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from counterfake.duplicates import same_photo
from counterfake.imaging import ImageError
from counterfake.index.candidates import CandidateIndex
from counterfake.index.owners import SharedEntries
from counterfake.matching import Matcher
from counterfake.registry import VideoFrame
from counterfake.results import Cluster, Pair, PairsDocument, PictureFile, TimeRange
from counterfake.signature.extract import Signature
from counterfake.video.matching import VideoMatch, scan_video
from counterfake.video.signature import VideoSignature, make_video_signature

SAME_COVER = 0.1  # coverages this close say nothing about the direction


@dataclass(frozen=True)
class VideoItem:
    """A video of the collection: the path shown, the file read, its context."""

    path: str
    file: str
    context: dict[str, Any] | None = None


@dataclass
class _Relation:
    shown_in: int  # the video scanned
    shows: int  # the video found in it
    match: VideoMatch


def add_video_pairs(doc: PairsDocument, videos: list[VideoItem]) -> None:
    """Add the videos' pairs, clusters, files and errors to a pairs document (its shape:
    docs/pairs.md; a video pair adds ``segments``, in the derivative's time and the source's)."""
    signatures: dict[int, VideoSignature] = {}
    sizes: dict[int, float] = {}
    for number, item in enumerate(videos):
        try:
            signatures[number] = make_video_signature(item.file, item.path)
            sizes[number] = os.stat(item.file).st_size / max(signatures[number].duration, 1e-3)
        except ImageError as error:
            doc.errors.append({"path": item.path, "error": str(error)})
        except OSError as error:
            doc.errors.append({"path": item.path, "error": f"{item.path}: {error.strerror}"})
    relations = _relations(videos, signatures)
    found = _directed(relations, signatures, sizes)
    clusters = _clusters(found, len(videos))
    first_id = len(doc.clusters) + 1
    for offset, (original, members) in enumerate(clusters):
        number = first_id + offset
        others = sorted(videos[m].path for m in members - {original})
        for source, derivative, match in found:
            if derivative in members:
                doc.pairs.append(_pair(videos, source, derivative, match, number))
        doc.clusters.append(
            Cluster(
                id=number,
                original=videos[original].path,
                members=[videos[original].path, *others],
                affected=True,
                scene=None,
            )
        )
    doc.images += len(signatures)
    doc.videos = len(signatures)
    doc.files += [
        PictureFile(v.path, signatures[n].sha256 if n in signatures else None, v.context)
        for n, v in enumerate(videos)
    ]


def _relations(videos: list[VideoItem], signatures: dict[int, VideoSignature]) -> list[_Relation]:
    """Every (scanned video, video found in it) with its match, self-matches excluded."""
    index = CandidateIndex()
    entries = SharedEntries(index, same_photo)
    frames: dict[int, VideoFrame] = {}
    frame_signatures: dict[int, Signature] = {}
    for number, signature in signatures.items():
        for time, frame in zip(signature.times, signature.frames, strict=True):
            key = len(frames) + 1
            frames[key] = VideoFrame(number, time)
            frame_signatures[key] = frame
            entries.add(key, frame, frame_signatures.__getitem__)
    index.prepare()
    matcher = Matcher(index, frame_signatures.__getitem__)
    durations = {number: s.duration for number, s in signatures.items()}
    relations = []
    for number in signatures:

        def others(entry: int, number: int = number) -> list[int]:
            return [o for o in entries.owners(entry) if frames[o].video_id != number]

        try:
            scanned = scan_video(videos[number].file, matcher, others, frames, durations)
        except ImageError:  # read once already: a file changed meanwhile is left out
            continue
        relations += [_Relation(number, m.target, m) for m in scanned.matches if not m.is_photo]
    return relations


def _covered(match: VideoMatch, duration: float) -> float:
    return sum(s.scan[1] - s.scan[0] for s in match.segments) / max(duration, 1e-3)


def _directed(
    relations: list[_Relation], signatures: dict[int, VideoSignature], sizes: dict[int, float]
) -> list[tuple[int, int, VideoMatch]]:
    """(source, derivative, the match in the derivative) for each related pair of videos,
    once per pair (see the module's description for the direction)."""
    by_pair: dict[frozenset[int], list[_Relation]] = {}
    for relation in relations:
        by_pair.setdefault(frozenset((relation.shown_in, relation.shows)), []).append(relation)
    directed = []
    for found in by_pair.values():
        cover = {r.shown_in: _covered(r.match, signatures[r.shown_in].duration) for r in found}
        a, b = sorted({found[0].shown_in, found[0].shows})
        cover_a, cover_b = cover.get(a, 0.0), cover.get(b, 0.0)
        if abs(cover_a - cover_b) > SAME_COVER:
            derivative = a if cover_a > cover_b else b
        else:
            derivative = a if sizes[a] < sizes[b] else b
        source = b if derivative == a else a
        match = next((r.match for r in found if r.shown_in == derivative), None)
        if match is None:  # only the source was seen to show the derivative: segments swapped
            match = found[0].match
        directed.append((source, derivative, match))
    return directed


def _clusters(
    directed: list[tuple[int, int, VideoMatch]], count: int
) -> list[tuple[int, set[int]]]:
    """(original, members) of each group of related videos."""
    group = list(range(count))

    def root(key: int) -> int:
        while group[key] != key:
            group[key] = group[group[key]]
            key = group[key]
        return key

    for source, derivative, _ in directed:
        group[root(source)] = root(derivative)
    members: dict[int, set[int]] = {}
    for source, derivative, _ in directed:
        members.setdefault(root(source), set()).update((source, derivative))
    derivatives = {derivative for _, derivative, _ in directed}
    clusters = []
    for keys in members.values():
        originals = sorted(keys - derivatives) or sorted(keys)
        clusters.append((originals[0], keys))
    return sorted(clusters, key=lambda c: c[0])


def _pair(
    videos: list[VideoItem], source: int, derivative: int, match: VideoMatch, cluster: int
) -> Pair:
    return Pair(
        source=videos[source].path,
        derivative=videos[derivative].path,
        kind=match.kind,
        score=round(match.score, 4),
        nfa=None,
        altered_fraction=round(match.altered_fraction, 4),
        mask=None,
        inliers=None,
        direction="coverage",
        cluster=cluster,
        media="video",
        segments=tuple(TimeRange(s.scan, s.registered) for s in match.segments),
    )
