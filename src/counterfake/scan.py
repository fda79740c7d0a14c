"""Drives image files through signature extraction and matching, in parallel.

Two jobs: ``hash_files`` turns photos into signatures (for ``register`` and ``hash``), and
``Scanner`` matches scanned files against a registry. Both take any number of files and folders,
give every file a result or a one-line error, and never stop for a bad file.

Work is spread over processes with ``fork``: the candidate index is built once in the parent and
shared copy-on-write, and each worker opens its own read-only view of the registry. Results come
back in input order.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import cv2

from counterfake.duplicates import same_photo
from counterfake.imaging import (
    DEFAULT_MAX_PIXELS,
    ImageError,
    decode_image,
    describe_os_error,
    read_bytes,
)
from counterfake.index.memory import CandidateIndex
from counterfake.index.owners import SharedEntries
from counterfake.matching import Match, Matcher, Thresholds
from counterfake.registry import RegisteredPhoto, RegisteredVideo, Registry
from counterfake.signature import cfsig
from counterfake.signature.extract import Signature, make_query, make_signature
from counterfake.sources.files import WholeFolder, iter_image_files
from counterfake.sources.telegram import (
    ExportEntry,
    ExportSummary,
    is_telegram_export,
    iter_export,
)
from counterfake.video.decode import is_animation, is_video_path
from counterfake.video.matching import VideoMatch, scan_video
from counterfake.video.signature import VideoSignature, file_digests, make_video_signature
from counterfake.video.timeline import Segment

T = TypeVar("T")
R = TypeVar("R")
_SIGNATURE_CACHE = 512


@dataclass
class FileResult:
    """What scanning one file found; ``error`` is set when the file could not be read.

    ``context`` says where an image came from when a source knows more than its path (a
    Telegram export: chat, message, sender); it is None for plain files.
    """

    path: str
    sha256: str | None = None
    error: str | None = None
    matches: list[dict[str, Any]] = field(default_factory=list)
    context: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "sha256": self.sha256,
            "error": self.error,
            "matches": self.matches,
            "context": self.context,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FileResult:
        return cls(data["path"], data["sha256"], data["error"], data["matches"], data["context"])

    @property
    def key(self) -> str:
        return item_key(ExportEntry(self.path, self.context) if self.context else self.path)


Item = str | tuple[str, str] | ExportEntry
"""One thing to scan: a file path, (path, why it cannot be listed), or an export's entry."""


def item_key(item: Item) -> str:
    """What names one scanned item across runs, so that a resumed scan can skip it.

    A path alone is not enough in an export: two messages may show the same file.
    """
    if isinstance(item, tuple):
        return item[0]
    if isinstance(item, ExportEntry) and item.context is not None:
        chat = item.context.get("chat") or {}
        where = [chat.get("id"), chat.get("name"), item.context.get("message_id")]
        return json.dumps([item.path, *where, item.context.get("media")])
    return item if isinstance(item, str) else item.path


@dataclass
class HashResult:
    """A photo's signature, a video's (``video``), or the one-line error."""

    path: str
    signature: Signature | None = None
    error: str | None = None
    video: VideoSignature | None = None


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


_job: Callable[[Any], Any] | None = None  # what a forked worker runs; set just before the fork


def _run_job(item: Any) -> Any:
    assert _job is not None
    return _job(item)


def _worker_start(initializer: Callable[[], None]) -> None:
    """Ctrl-C is the parent's to handle: it stops the pool and keeps what was finished."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    initializer()


def in_parallel(
    function: Callable[[T], R], items: Iterable[T], workers: int, initializer: Callable[[], None]
) -> Iterator[R]:
    """``map`` over processes, in order, or in this process when one worker is asked for.

    Workers are forked, so they inherit ``function`` (a closure that could not be pickled) and
    everything it refers to, such as the candidate index, without copying.
    """
    if workers <= 1:
        initializer()
        yield from map(function, items)
        return
    global _job
    _job = function
    context = multiprocessing.get_context("fork")
    with context.Pool(workers, initializer=_worker_start, initargs=(initializer,)) as pool:
        yield from pool.imap(_run_job, items, chunksize=4)


def _files(paths: Iterable[str | os.PathLike]) -> Iterator[str | tuple[str, str]]:
    """File paths to read, and (path, one-line error) for what could not even be listed."""
    for item in iter_image_files(paths):
        yield (item.path, str(item)) if isinstance(item, ImageError) else str(item)


def expand(
    paths: Iterable[str | os.PathLike], exports: list[ExportSummary] | None = None
) -> Iterator[Item]:
    """What to scan: the files under ``paths``, except that a Telegram export (given, or found
    at any depth of a folder given) yields its entries instead; its summary is appended to
    ``exports``, filled in as the entries are read."""
    for item in iter_image_files(paths, read_whole=is_telegram_export):
        if isinstance(item, WholeFolder):
            summary = ExportSummary(str(item.path))
            if exports is not None:
                exports.append(summary)
            yield from iter_export(item.path, summary)
        elif isinstance(item, ImageError):
            yield (item.path, str(item))
        else:
            yield str(item)


def read_image(path: str, max_pixels: int) -> tuple[str, Any]:
    """Read and decode a file: (sha256 of its bytes, RGB pixels); ImageError on any problem."""
    data = read_bytes(path)
    return hashlib.sha256(data).hexdigest(), decode_image(data, path, max_pixels=max_pixels)


# ---- hashing -------------------------------------------------------------------------------


def hash_files(
    paths: Iterable[str | os.PathLike],
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    workers: int = 1,
) -> Iterator[HashResult]:
    """Signatures of every image and video under ``paths``; the label of each is its path as given
    (control characters escaped, the last cfsig.MAX_LABEL characters of a longer one), so that
    every label passes cfsig.check_label."""

    def hash_one(item: str | tuple[str, str]) -> HashResult:
        if isinstance(item, tuple):
            return HashResult(item[0], error=item[1])
        if is_video_path(item) or is_animation(item):
            try:
                video = make_video_signature(item, cfsig.label_for(item))
            except ImageError as error:  # VideoError is one
                return HashResult(item, error=str(error))
            return HashResult(item, video=video)
        try:
            sha256, rgb = read_image(item, max_pixels)
        except ImageError as error:
            return HashResult(item, error=str(error))
        return HashResult(item, make_signature(rgb, label=cfsig.label_for(item), sha256=sha256))

    yield from in_parallel(hash_one, _files(paths), workers, lambda: None)


# ---- scanning ------------------------------------------------------------------------------


class Scanner:
    """Matches files against a registry; build once, then ``scan`` any number of paths."""

    def __init__(
        self,
        registry_path: str | os.PathLike,
        *,
        thresholds: Thresholds | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        self.registry_path = str(registry_path)
        self.thresholds = thresholds or Thresholds()
        self.max_pixels = max_pixels
        self.index = CandidateIndex()
        self.entries = SharedEntries(self.index, same_photo)  # copies of a photo: one entry
        with Registry(self.registry_path) as registry:
            for photo_id, signature in registry.signatures():
                self.entries.add(photo_id, signature, registry.signature)
            self.photos: dict[int, RegisteredPhoto] = {p.photo_id: p for p in registry.photos()}
            self.videos: dict[int, RegisteredVideo] = {v.video_id: v for v in registry.videos()}
            self.video_frames = registry.video_frames()
        self.index.prepare()  # before workers are forked, so they share what it joins
        self._matcher: Matcher | None = None

    def _open(self) -> None:
        """Give this process its own registry connection (SQLite handles must not cross a fork)."""
        registry = Registry(self.registry_path)
        self._matcher = Matcher(
            self.index, lru_cache(maxsize=_SIGNATURE_CACHE)(registry.signature), self.thresholds
        )

    def scan(
        self,
        paths: Iterable[str | os.PathLike],
        *,
        masks_dir: str | os.PathLike | None = None,
        workers: int = 1,
        exports: list[ExportSummary] | None = None,
        done: dict[str, FileResult] | None = None,
    ) -> Iterator[FileResult]:
        """A result for every file under ``paths``, in order.

        Telegram exports among ``paths`` are scanned message by message; their summaries go to
        ``exports``. An item whose ``item_key`` is in ``done`` (a resumed scan) is not scanned
        again: its earlier result is yielded in its place.
        """
        if masks_dir is not None:
            Path(masks_dir).mkdir(parents=True, exist_ok=True)
        finished = done or {}

        def scan_one(item: Item) -> FileResult:
            if isinstance(item, tuple):
                return FileResult(item[0], error=item[1])
            if isinstance(item, ExportEntry):
                if item.source is None:
                    return FileResult(item.path, error=item.error, context=item.context)
                result = self.scan_file(item.source, masks_dir)
                result.path, result.context = item.path, item.context
                return result
            return self.scan_file(item, masks_dir)

        def pending(items: Iterator[Item]) -> Iterator[Item | FileResult]:
            for item in items:
                yield finished.get(item_key(item), item)

        def run(item: Item | FileResult) -> FileResult:
            return item if isinstance(item, FileResult) else scan_one(item)

        yield from in_parallel(run, pending(expand(paths, exports)), workers, self._open)

    def scan_file(self, path: str, masks_dir: str | os.PathLike | None = None) -> FileResult:
        """Match one file; a file that cannot be read gets its error, never an exception."""
        if self._matcher is None:
            self._open()
        if is_video_path(path) or is_animation(path):
            return self.scan_video(path, masks_dir)
        try:
            sha256, rgb = read_image(path, self.max_pixels)
        except ImageError as error:
            return FileResult(path, error=str(error))
        matches = [
            replace(match, photo_id=owner)  # a match of an entry is a match of each owner
            for match in self._matcher.match(make_query(rgb))
            for owner in self.entries.owners(match.photo_id)
        ]
        return FileResult(
            path, sha256, None, [self._describe(m, path, sha256, masks_dir) for m in matches]
        )

    def scan_video(self, path: str, masks_dir: str | os.PathLike | None = None) -> FileResult:
        """Match one video against registered videos and photos (video/matching.py)."""
        assert self._matcher is not None
        try:
            sha256 = file_digests(path)[0]
            found = scan_video(
                path,
                self._matcher,
                self.entries.owners,
                self.video_frames,
                {v.video_id: v.duration for v in self.videos.values()},
            )
        except ImageError as error:  # VideoError is one
            return FileResult(path, error=str(error))
        except OSError as error:
            return FileResult(path, error=str(ImageError(path, describe_os_error(error, path))))
        described = [self._describe_video(m, path, sha256, masks_dir) for m in found.matches]
        return FileResult(path, sha256, None, described)

    def _describe_video(
        self, match: VideoMatch, path: str, sha256: str, masks_dir: str | os.PathLike | None
    ) -> dict[str, Any]:
        """A video match as a result entry: a photo's fields, plus its time segments (each
        ``{"scan": [start, end], "registered": [start, end]}``; a photo has no registered
        range) and the scanned frame's time where it was seen best (and its mask's)."""
        if match.is_photo:
            photo = self.photos[match.target]
            label, subject = photo.label, photo.subject
        else:
            video = self.videos[match.target]
            label, subject = video.label, video.subject
        mask_path = None
        if masks_dir is not None and match.mask is not None:
            name = f"{Path(path).stem}.{sha256[:12]}.{'p' if match.is_photo else 'v'}{match.target}"
            mask_path = str(Path(masks_dir) / f"{name}.{match.frame_time:.2f}s.png")
            if not cv2.imwrite(mask_path, match.mask):
                raise OSError(f"{mask_path}: could not write the mask")
        return {
            "photo": label,
            "subject": subject,
            "kind": match.kind,
            "score": round(match.score, 4),
            "nfa": float(f"{match.nfa:.3g}"),
            "altered_fraction": round(match.altered_fraction, 4),
            "mask": mask_path,
            "inliers": match.inliers,
            "instances": len(match.segments),
            "media": "photo" if match.is_photo else "video",
            "frame_time": round(match.frame_time, 3),
            "segments": [
                {"scan": list(s.scan)}
                | ({} if match.is_photo else {"registered": list(s.registered)})
                for s in match.segments
            ],
        }

    def _describe(
        self, match: Match, path: str, sha256: str, masks_dir: str | os.PathLike | None
    ) -> dict[str, Any]:
        photo = self.photos[match.photo_id]
        mask_path = None
        if masks_dir is not None and match.mask is not None:
            mask_path = str(
                Path(masks_dir) / f"{Path(path).stem}.{sha256[:12]}.{match.photo_id}.png"
            )
            if not cv2.imwrite(mask_path, match.mask):
                raise OSError(f"{mask_path}: could not write the mask")
        return {
            "photo": photo.label,
            "subject": photo.subject,
            "kind": match.kind,
            "score": round(match.score, 4),
            "nfa": float(f"{match.nfa:.3g}"),
            "altered_fraction": round(match.altered_fraction, 4),
            "mask": mask_path,
            "inliers": match.inliers,
            "instances": len(match.instances),
        }


def _segment_entry(segment: Segment, is_photo: bool) -> dict[str, list[float]]:
    if is_photo:
        return {"scan": list(segment.scan)}
    return {"scan": list(segment.scan), "registered": list(segment.registered)}
