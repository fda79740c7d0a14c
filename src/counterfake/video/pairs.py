"""Videos in ``counterfake pairs``: which videos of a collection show the same footage (a
repost, a trim, a clip cut into a compilation), grouped into clusters, with no registry.

Every video is treated as if registered: its signature (video/signature.py) goes into an
in-process index, and every video is then scanned against the others with the same chain as a
scan (video/matching.py: each sampled frame verified and decided, hits chained into segments).
A video never matches itself.

The collection's photos are indexed beside the videos' frames (their signatures as the pairs
of photos made them), so a scan of a video also finds the photos it shows (``contains_photo``).
Such a photo is the source of the video, with the video's segments showing it: the video and
the videos related to it (its reposts, trims) join the photo's cluster, or, for a photo in no
cluster, a new one with the photo as its original. A video showing two photos of different
clusters (a slideshow) joins both, as a collage of two photos does; the clusters stay apart.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from counterfake.duplicates import same_photo
from counterfake.imaging import ImageError
from counterfake.index.candidates import CandidateIndex
from counterfake.index.owners import SharedEntries
from counterfake.matching import Matcher
from counterfake.registered import VideoFrame
from counterfake.results import Cluster, Direction, Pair, PairsDocument, PictureFile, TimeRange
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


@dataclass(frozen=True)
class PhotoItem:
    """A photo of the collection: its path, and its key in the signatures of the pairs run."""

    path: str
    key: int


@dataclass
class _Relation:
    shown_in: int  # the video scanned
    shows: int  # the video found in it, or the photo (``is_photo``: its PhotoItem's position)
    match: VideoMatch
    is_photo: bool = False


def add_video_pairs(
    doc: PairsDocument,
    videos: list[VideoItem],
    photos: Sequence[PhotoItem] = (),
    photo_signature: Callable[[int], Signature] | None = None,
) -> None:
    """Add the videos' pairs, clusters, files and errors to a pairs document (its shape:
    docs/pairs.md; a video pair adds ``segments``, in the derivative's time and the source's),
    and the pairs of the ``photos`` shown in them (``photo_signature`` reads a photo's
    signature by its key), joined to the photos' clusters."""
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
    relations = _relations(videos, signatures, photos, photo_signature)
    found = _directed([r for r in relations if not r.is_photo], signatures, sizes)
    clusters = _clusters(found, len(videos))
    shown: dict[int, list[_Relation]] = {}  # video -> the photos found in it
    for relation in relations:
        if relation.is_photo:
            shown.setdefault(relation.shown_in, []).append(relation)
    grouped = {m for _, members in clusters for m in members}
    groups = [(videos[o].path, members) for o, members in clusters]
    groups += [(videos[v].path, {v}) for v in sorted(shown) if v not in grouped]
    for original, members in groups:
        joined = _join_photos(doc, videos, members, shown, photos)
        number = joined[0] if joined else len(doc.clusters) + 1
        for source, derivative, match in found:
            if derivative in members:
                doc.pairs.append(_pair(videos[source].path, videos[derivative].path, match, number))
        if not joined and len(members) > 1:
            paths = sorted(videos[m].path for m in members)
            paths.remove(original)
            doc.clusters.append(Cluster(number, original, [original, *paths], True, None))
    doc.images += len(signatures)
    doc.videos = len(signatures)
    doc.files += [
        PictureFile(v.path, signatures[n].sha256 if n in signatures else None, v.context)
        for n, v in enumerate(videos)
    ]


def _join_photos(
    doc: PairsDocument,
    videos: list[VideoItem],
    members: set[int],
    shown: dict[int, list[_Relation]],
    photos: Sequence[PhotoItem],
) -> list[int]:
    """Pair each photo shown in a group of related videos with the video showing it, and add
    the group's videos to the cluster of every such photo (a new cluster for a photo in
    none); the ids of those clusters, in order (none when the group shows no photo)."""
    paths = sorted(videos[m].path for m in members)
    joined: list[int] = []
    for video in sorted(members):
        for relation in shown.get(video, []):
            photo = photos[relation.shows].path
            clusters = [c for c in doc.clusters if photo in c.members]
            if not clusters:
                clusters = [Cluster(len(doc.clusters) + 1, photo, [photo], True, None)]
                doc.clusters.append(clusters[0])
                doc.photos_affected += 1
            for cluster in clusters:
                cluster.members.extend(p for p in paths if p not in cluster.members)
                joined += [cluster.id] if cluster.id not in joined else []
            doc.pairs.append(_photo_pair(photo, videos[video].path, relation.match, clusters[0]))
    return joined


def _relations(
    videos: list[VideoItem],
    signatures: dict[int, VideoSignature],
    photos: Sequence[PhotoItem],
    photo_signature: Callable[[int], Signature] | None,
) -> list[_Relation]:
    """Every (scanned video, video or photo found in it) with its match, a video's own
    frames excluded."""
    index = CandidateIndex()
    entries = SharedEntries(index, same_photo)
    frames: dict[int, VideoFrame] = {}
    held: dict[int, Signature] = {}  # the frames' signatures; the photos' are read when needed
    photo_at: dict[int, int] = {}  # index key -> the photo's position in ``photos``

    def signature_of(key: int) -> Signature:
        if key in photo_at:
            assert photo_signature is not None  # photos are indexed only with it
            return photo_signature(photos[photo_at[key]].key)
        return held[key]

    for number, signature in signatures.items():
        for time, frame in zip(signature.times, signature.frames, strict=True):
            key = len(frames) + 1
            frames[key] = VideoFrame(number, time)
            held[key] = frame
            entries.add(key, frame, signature_of)
    if signatures and photo_signature is not None:
        for position in range(len(photos)):
            key = len(frames) + 1 + position
            photo_at[key] = position
            index.add(key, signature_of(key))  # an entry of its own (pairs keep no PDQ hash)
    index.prepare()
    matcher = Matcher(index, signature_of)
    durations = {number: s.duration for number, s in signatures.items()}
    relations = []
    for number in signatures:

        def others(entry: int, number: int = number) -> list[int]:
            return [
                o for o in entries.owners(entry) if o in photo_at or frames[o].video_id != number
            ]

        try:
            scanned = scan_video(videos[number].file, matcher, others, frames, durations)
        except ImageError:  # read once already: a file changed meanwhile is left out
            continue
        relations += [
            _Relation(number, photo_at[m.target] if m.is_photo else m.target, m, m.is_photo)
            for m in scanned.matches
        ]
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


def _photo_pair(photo: str, video: str, match: VideoMatch, cluster: Cluster) -> Pair:
    """A photo shown in a video: the photo is the source, the segments are the video's."""
    return _pair(photo, video, match, cluster.id, "shown in video", photo_source=True)


def _pair(
    source: str,
    derivative: str,
    match: VideoMatch,
    cluster: int,
    direction: Direction = "coverage",
    *,
    photo_source: bool = False,
) -> Pair:
    """A pair from a verified video match; a photo source has no time range of its own."""
    return Pair(
        source=source,
        derivative=derivative,
        kind=match.kind,
        score=round(match.score, 4),
        nfa=None,
        altered_fraction=round(match.altered_fraction, 4),
        mask=None,
        inliers=None,
        direction=direction,
        cluster=cluster,
        media="photo" if photo_source else "video",
        segments=tuple(
            TimeRange(s.scan, None if photo_source else s.registered) for s in match.segments
        ),
    )
