"""Drives image files through signature extraction and matching, in parallel.

Two jobs: ``hash_files`` turns photos into signatures (for ``register`` and ``hash``), and
``Scanner`` matches scanned files against a registry. Both take any number of files and folders,
give every file a result or a one-line error, and never stop for a bad file.

Work is spread over processes with ``fork``: the candidate index is built once in the parent and
shared copy-on-write, and each worker opens its own read-only view of the registry. Results come
back in input order.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from counterfake.imaging import DEFAULT_MAX_PIXELS, ImageError, describe_os_error
from counterfake.index.candidates import CandidateIndex
from counterfake.index.compact import CompactIndex
from counterfake.index.votes import CandidateSource
from counterfake.inputs import Item, expand, image_files, item_key, read_image
from counterfake.loading import cached_matcher, index_registry
from counterfake.masks import DIGEST_CHARACTERS, write_mask
from counterfake.matching import Match, Matcher, Thresholds
from counterfake.parallel import in_parallel
from counterfake.registered import RegisteredPhoto, RegisteredVideo
from counterfake.registry import Registry
from counterfake.results import FileResult, Finding
from counterfake.signature import cfsig
from counterfake.signature.extract import Signature, make_query, make_signature
from counterfake.sources.telegram import ExportEntry, ExportSummary
from counterfake.video.decode import VideoError, is_animation, is_video_path
from counterfake.video.exchange import VpdqBank
from counterfake.video.matching import VideoMatch, scan_video
from counterfake.video.signature import VideoSignature, file_digests, make_video_signature
from counterfake.video.vpdq import vpdq_hash

SIGNATURE_CACHE = 512  # signatures each scanning process keeps, read most recently first


@dataclass
class HashResult:
    """A photo's signature, a video's (``video``), or the one-line error."""

    path: str
    signature: Signature | None = None
    error: str | None = None
    video: VideoSignature | None = None


# ---- hashing -------------------------------------------------------------------------------


def hash_files(
    paths: Iterable[str | os.PathLike],
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    workers: int = 1,
    mirror: bool = False,
) -> Iterator[HashResult]:
    """Signatures of every image and video under ``paths``; the label of each is its path as given
    (control characters escaped, the last cfsig.MAX_LABEL characters of a longer one), so that
    every label passes cfsig.check_label. With ``mirror``, an image's signature holds its mirror
    image's features too (see ``make_signature``)."""

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
        label = cfsig.label_for(item)
        return HashResult(item, make_signature(rgb, label, sha256, mirror=mirror))

    yield from in_parallel(hash_one, image_files(paths), workers)


# ---- scanning ------------------------------------------------------------------------------


class Scanner:
    """Matches files against a registry; build once, then ``scan`` any number of paths."""

    def __init__(
        self,
        registry_path: str | os.PathLike,
        *,
        thresholds: Thresholds | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        index: CandidateSource | CompactIndex | None = None,
    ) -> None:
        """Index the registry in ``index``: a new CandidateIndex by default; a CompactIndex
        (index/compact.py, about 1.2 kB a photo against about 40 kB, but it finds fewer of the
        most heavily edited copies: docs/index.md); or one split over a cluster for
        ``scan --cluster`` (cluster/scan.py)."""
        self.registry_path = str(registry_path)
        self.thresholds = thresholds or Thresholds()
        self.max_pixels = max_pixels
        self.index = index if index is not None else CandidateIndex()
        with Registry(self.registry_path) as registry:
            # sorted before workers are forked, so they share what it joins
            self.entries = index_registry(registry, self.index)
            self.photos: dict[int, RegisteredPhoto] = {p.photo_id: p for p in registry.photos()}
            self.videos: dict[int, RegisteredVideo] = {v.video_id: v for v in registry.videos()}
            self.video_frames = registry.video_frames()
            self.vpdq_bank = VpdqBank(registry.imported_vpdq())
        self._matcher: Matcher | None = None

    def _open(self) -> Matcher:
        """Give this process its own registry connection (SQLite handles must not cross a fork)."""
        registry = Registry(self.registry_path)
        self._matcher, _ = cached_matcher(
            self.index, registry.signature, self.thresholds, SIGNATURE_CACHE
        )
        return self._matcher

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

        def pending(items: Iterator[Item]) -> Iterator[Item | FileResult]:
            for item in items:
                yield finished.get(item_key(item), item)

        def run(item: Item | FileResult) -> FileResult:
            return item if isinstance(item, FileResult) else self.scan_item(item, masks_dir)

        yield from in_parallel(run, pending(expand(paths, exports)), workers, self._open)

    def scan_item(self, item: Item, masks_dir: str | os.PathLike | None = None) -> FileResult:
        """One item's result: a file's, an export entry's (with its message's context), or
        the error that kept a file from being listed."""
        if isinstance(item, tuple):
            return FileResult(item[0], error=item[1])
        if isinstance(item, ExportEntry):
            if item.source is None:
                return FileResult(item.path, error=item.error, context=item.context)
            result = self.scan_file(item.source, masks_dir)
            result.path, result.context = item.path, item.context
            return result
        return self.scan_file(item, masks_dir)

    def scan_file(self, path: str, masks_dir: str | os.PathLike | None = None) -> FileResult:
        """Match one file; a file that cannot be read gets its error, never an exception."""
        matcher = self._matcher if self._matcher is not None else self._open()
        if is_video_path(path) or is_animation(path):
            return self.scan_video(path, masks_dir)
        try:
            sha256, rgb = read_image(path, self.max_pixels)
        except ImageError as error:
            return FileResult(path, error=str(error))
        return self.image_result(path, sha256, matcher.match(make_query(rgb)), masks_dir)

    def image_result(
        self, path: str, sha256: str, found: list[Match], masks_dir: str | os.PathLike | None
    ) -> FileResult:
        """An image's result from its matches, which name index entries (matched here, or on
        a cluster's worker): a match of an entry is a match of each of its owners."""
        matches = [
            replace(match, photo_id=owner)
            for match in found
            for owner in self.entries.owners(match.photo_id)
        ]
        return FileResult(
            path, sha256, None, [self._describe(m, path, sha256, masks_dir) for m in matches]
        )

    def scan_video(self, path: str, masks_dir: str | os.PathLike | None = None) -> FileResult:
        """Match one video against registered videos and photos (video/matching.py), and
        look its vPDQ up among imported signals when there are any."""
        matcher = self._matcher if self._matcher is not None else self._open()
        try:
            sha256 = file_digests(path)[0]
            found = scan_video(
                path,
                matcher,
                self.entries.owners,
                self.video_frames,
                {v.video_id: v.duration for v in self.videos.values()},
            )
            imported = self._imported_vpdq(path, found.duration)
        except ImageError as error:  # VideoError is one
            return FileResult(path, error=str(error))
        except OSError as error:
            return FileResult(path, error=str(ImageError(path, describe_os_error(error, path))))
        described = [self._describe_video(m, path, sha256, masks_dir) for m in found.matches]
        return FileResult(path, sha256, None, described + imported)

    def _imported_vpdq(self, path: str, duration: float) -> list[Finding]:
        """The imported vPDQ signals the video matches by Meta's decision, each a finding
        naming the imported record (docs/video.md). Hashing reads the video once more, every
        frame, so it is done only when signals were imported; an animation, or a stream with no
        frame rate, has no vPDQ."""
        if not len(self.vpdq_bank) or is_animation(path):
            return []
        try:
            query = vpdq_hash(path)
        except VideoError:  # no frame rate to number frames by: vPDQ cannot hash it
            return []
        hits = self.vpdq_bank.lookup(query, duration)
        return [Finding.of_imported_video(hit, signal="vpdq") for hit in hits]

    def _describe_video(
        self, match: VideoMatch, path: str, sha256: str, masks_dir: str | os.PathLike | None
    ) -> Finding:
        """A video match as a finding: a photo's fields, plus its time segments (a photo has no
        registered range) and the scanned frame's time where it was seen best (and its mask's)."""
        if match.is_photo:
            photo = self.photos[match.target]
            label, subject = photo.label, photo.subject
        else:
            video = self.videos[match.target]
            label, subject = video.label, video.subject
        mask_path = None
        if masks_dir is not None and match.mask is not None:
            names = [
                sha256[:DIGEST_CHARACTERS],
                f"{'p' if match.is_photo else 'v'}{match.target}",
                f"{match.frame_time:.2f}s",
            ]
            mask_path = write_mask(masks_dir, path, names, match.mask)
        return Finding.of_video(match, photo=label, subject=subject, mask=mask_path)

    def _describe(
        self, match: Match, path: str, sha256: str, masks_dir: str | os.PathLike | None
    ) -> Finding:
        photo = self.photos[match.photo_id]
        mask_path = None
        if masks_dir is not None and match.mask is not None:
            names = [sha256[:DIGEST_CHARACTERS], str(match.photo_id)]
            mask_path = write_mask(masks_dir, path, names, match.mask)
        return Finding.of(
            match,
            photo=photo.label,
            subject=photo.subject,
            mask=mask_path,
            instances=len(match.instances),
        )
