"""The matching engine inside one service process: an in-memory index that follows the registry.

Every service process (worker) loads its candidate index at start, from the packed index file
when it has one that fits the registry (loading.load_candidates; indexing every signature
instead takes minutes at 100,000 photos), and its PDQ index from the registry's table of
hashes; then it follows the registry's change feed in a background thread (PostgreSQL
LISTEN/NOTIFY; a short poll on SQLite). The feed thread also writes the packed file again,
at most every ``repack_seconds`` while the registry changes, so that a worker started later
has few changes to apply from the feed. The feed alone is not enough under load: its thread
waits for the interpreter behind the matches, and a registration reached a busy worker's index
only after up to a second. So every match first reads the feed's head (one indexed query) and
applies what it has not seen: a registration or a withdrawal answered before a match request
starts is in effect for that match, in every worker. A match sorts the registrations it
applies into a small segment of the index; joining segments (long sorts at a large registry,
see CandidateIndex) is left to the feed thread, which builds the
joined segment while matches go on.

Copies of one picture (the same signature registered again, or a re-encode of the photo)
share one entry of the candidate index with every registration as its owners (see
index/owners.py): however many times one registrar registers a photo, it takes one place in
the index, and a match of it names every subject holding it.

A worker holds only its indexes and a small bounded cache: signatures and photo labels stay in
the registry, and verification reads the few it needs (about ten candidates a query). Memory
therefore grows with the registry only by what the indexes keep per photo. The registry object
is shared by the request threads (db.py gives each thread its own connection); the feed is
followed on a registry object of its own.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass, replace

from counterfake.imaging import DEFAULT_MAX_PIXELS, decode_image
from counterfake.index.candidates import CandidateIndex
from counterfake.index.compact import AnyIndex, CompactIndex
from counterfake.index.owners import SharedEntries
from counterfake.index.packed import PackedIndexError, index_arrays, kind_of, read_stamp
from counterfake.index.pdq import PdqIndex
from counterfake.index.votes import CandidateSource
from counterfake.loading import (
    LoadedCandidates,
    cached_matcher,
    index_registry,
    load_candidates,
    pack,
)
from counterfake.matching import Match, SignatureQuery, Thresholds
from counterfake.registered import Change, RegisteredPhoto
from counterfake.registry import Registry
from counterfake.signature.extract import Signature, make_query
from counterfake.signature.pdq import pdq_hash
from counterfake.video.decode import VideoError, VideoLimits, is_animation
from counterfake.video.exchange import VpdqBank, VpdqHit
from counterfake.video.matching import VideoMatch, scan_video
from counterfake.video.signature import file_digests
from counterfake.video.vpdq import vpdq_hash

log = logging.getLogger(__name__)
# Signatures a worker keeps, read most recently first: bounded whatever the registry's size,
# and large enough that a photo verified often is read once (a miss reads and checks a blob).
SIGNATURE_CACHE = 1024
_LOAD_BATCH = 5000  # PDQ hashes added to the PDQ index at once while loading
# Writing the packed index takes about 4 s per gigabyte of index here (18 s at 100,000 photos,
# docs/speed.md), so it is written at most this often while the registry changes; a worker
# started from an older file applies the changes since from the feed.
REPACK_SECONDS = 300.0


@dataclass(frozen=True)
class ScannedImage:
    """What the service knows of the scanned side: its file hash and its PDQ hash.

    The PDQ hash only serves suppressions and recorded matches, so it is computed only when
    something matched (None otherwise): it would cost most of an unmatched upload's time.
    """

    sha256: str
    pdq_hex: str | None


@dataclass(frozen=True)
class Found:
    photo: RegisteredPhoto
    match: Match


@dataclass(frozen=True)
class FoundInVideo:
    """A registered video or photo found in a scanned video, with whose it is."""

    subject: str
    label: str
    match: VideoMatch


@dataclass(frozen=True)
class MatchedVideo:
    """What a scanned video showed: its SHA-256, the registered videos and photos found in
    it, and the imported vPDQ signals it matches."""

    sha256: str
    found: list[FoundInVideo]
    imported: list[VpdqHit]


@dataclass
class LoadedIndexes:
    """A registry's indexes as loaded at ``seq``: what a worker starts from."""

    index: AnyIndex  # a CandidateIndex or CompactIndex, or one split over a cluster (cluster/)
    pdq: PdqIndex
    seq: int
    entries: SharedEntries  # which registered photos each entry of ``index`` stands for


def load_indexes(
    registry: Registry,
    packed: str | None = None,
    index: CandidateSource | None = None,
    kind: str = "hash",
) -> LoadedIndexes:
    """Load everything registered; changes made meanwhile are applied by the next sync.

    The candidate index (of ``kind``: the multi-index hash or the compact index) comes from
    the ``packed`` file when it fits the registry, else from the registry (see
    loading.load_candidates), into ``index`` when one is given (an index split over a
    cluster, which has no packed file). Signatures stream in pages and each is dropped
    once indexed, and the PDQ hashes come from their own table, so a large registry never sits
    in memory whole. The candidate index is sorted into its search tables here, before the
    worker answers `/health`: left to the first search, sorting a large registry would fall
    inside that request (past a minute, the request timeout, at 50,000 photos on two shared
    cores).
    """
    if index is None:
        candidates = load_candidates(registry, packed, kind, merge_on_search=False)
    else:  # the feed's head first: what is registered while indexing is applied by a sync
        seq = registry.head_seq()
        candidates = LoadedCandidates(index, index_registry(registry, index), seq)
    loaded = LoadedIndexes(candidates.index, PdqIndex(), candidates.seq, candidates.entries)
    batch: list[tuple[str, str]] = []
    for row in registry.pdq_hashes():
        batch.append((f"{row.kind}:{row.ref}", row.hex_hash))
        if len(batch) == _LOAD_BATCH:
            loaded.pdq.add_many(batch)
            batch = []
    loaded.pdq.add_many(batch)
    return loaded


class MatchingEngine:
    """Candidate and PDQ indexes over the registry, kept current by the change feed.

    The indexes are loaded from ``registry`` (and the ``packed`` file; the candidate index of
    ``index_kind``) unless ``loaded`` brings them (service/workers.py loads them once for
    several worker processes); the feed
    is then followed from where they were loaded. The candidate index never joins segments
    during a search: the feed thread does, and writes the ``packed`` file again when due.
    """

    def __init__(
        self,
        registry: Registry,
        *,
        thresholds: Thresholds | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        feed_wait: float = 0.5,
        concurrent_matches: int | None = None,
        loaded: LoadedIndexes | None = None,
        packed: str | None = None,
        repack_seconds: float = REPACK_SECONDS,
        index_kind: str = "hash",
    ) -> None:
        self.registry = registry
        self.max_pixels = max_pixels
        self.feed_wait = feed_wait
        loaded = loaded or load_indexes(registry, packed, kind=index_kind)
        self.index, self.pdq, self._seq = loaded.index, loaded.pdq, loaded.seq
        self.packed, self.repack_seconds = packed, repack_seconds
        self._packed_seq, self._packed_at = loaded.seq, time.monotonic()  # as loaded or written
        self.entries = loaded.entries
        self._sync_lock = threading.Lock()
        self._stop = threading.Event()
        # Matching is CPU-bound: more matches at once than cores only makes every one slower,
        # and the feed thread would wait its turn behind all of them for the interpreter.
        self._slots = threading.BoundedSemaphore(concurrent_matches or os.cpu_count() or 1)
        self._follower: threading.Thread | None = None
        self._vpdq_bank, self._vpdq_last = VpdqBank(()), 0  # imported vPDQ, read on demand
        self._matcher, self._signatures = cached_matcher(
            self.index, self._signature, thresholds or Thresholds(), SIGNATURE_CACHE
        )
        # The changes since the packed file was written (or while the registry was indexed),
        # applied before the worker answers: its first request must not wait for them.
        self.sync()

    def _signature(self, photo_id: int) -> Signature:
        return self.registry.signature(photo_id)

    def pdq_count(self) -> int:
        """PDQ hashes answerable by :meth:`lookup_pdq`: registered photos and imported ones."""
        return len(self.pdq)

    def _remove(self, photo_id: int) -> None:
        indexed = self.entries.remove(photo_id, self.registry.signature)
        self.pdq.remove(f"photo:{photo_id}")
        if indexed:
            self._signatures.cache_clear()  # no copy of a withdrawn signature stays in memory

    def sync(self) -> int:
        """Apply every change in the feed since the last sync; return how many."""
        registry = self.registry
        applied = 0
        with self._sync_lock:
            while True:
                seq, changes = registry.changes_since(self._seq)
                if not changes:
                    return applied
                for change in changes:
                    self._apply(change)
                applied += len(changes)
                self._seq = seq

    def _apply(self, change: Change) -> None:
        if change.action == "add":
            try:
                signature = self.registry.signature(change.photo_id)
            except KeyError:  # added, then withdrawn before this sync: nothing to index
                self._remove(change.photo_id)
                return
            self.entries.add(change.photo_id, signature, self._signatures)
            self.pdq.add(f"photo:{change.photo_id}", signature.pdq["original"].hex())
        elif change.action == "remove":
            self._remove(change.photo_id)
        elif change.action == "import":  # photo_id names a row of imported PDQ hashes
            imported = self.registry.imported_pdq(change.photo_id)
            if imported is not None:
                self.pdq.add(f"imported:{change.photo_id}", imported[1])
        elif change.action == "unimport":
            self.pdq.remove(f"imported:{change.photo_id}")

    def start(self) -> None:
        """Follow the change feed in a background thread until :meth:`stop`."""
        self._follower = threading.Thread(target=self._follow, name="registry-feed", daemon=True)
        self._follower.start()

    def _follow(self) -> None:
        feed = Registry(self.registry.path)  # LISTEN needs a connection of its own
        try:
            while not self._stop.is_set():
                try:
                    feed.wait_for_change(self.feed_wait)
                    self.sync()
                    self.index.compact()
                    if time.monotonic() - self._packed_at >= self.repack_seconds:
                        self.repack()
                except Exception:  # a lost connection: log, wait, and keep following
                    log.exception("following the registry change feed failed; retrying")
                    self._stop.wait(self.feed_wait)
        finally:
            feed.close()

    def repack(self) -> bool:
        """Write the packed index file from this worker's index if it holds changes the file
        lacks; True if it wrote it. A file that another worker wrote meanwhile, as new as this
        worker's index or newer, is left alone."""
        if self.packed is None or self._seq == self._packed_seq:
            return False
        index = self.index
        if not isinstance(index, CandidateIndex | CompactIndex):  # over a cluster: no file
            return False
        with self._sync_lock:  # index and entries as of one change: no change is applied now
            seq = self._seq
            arrays, entries = index_arrays(index), self.entries.arrays()
        self._packed_at = time.monotonic()
        try:  # a file of the other index is unusable here: written anew
            on_disk = read_stamp(self.packed, kind_of(index))
            if on_disk.seq >= seq and on_disk.registry == self.registry.identity():
                self._packed_seq = seq
                return False
        except (OSError, PackedIndexError):  # missing or unusable: written anew below
            pass
        written = pack(self.registry, self.packed, seq, arrays, entries)
        if written:
            self._packed_seq = seq
        return written

    def stop(self) -> None:
        self._stop.set()
        if self._follower is not None:
            self._follower.join(timeout=10)

    def __len__(self) -> int:
        """Registered photos indexed (several may share one entry of the candidate index)."""
        return len(self.entries)

    def match_image(self, data: bytes, name: str) -> tuple[ScannedImage, list[Found]]:
        """Decode (with the pixel limit) and match an uploaded image; ImageError if unreadable."""
        with self._slots:
            rgb = decode_image(data, name, max_pixels=self.max_pixels)
            query = make_query(rgb)
            self._catch_up()
            found = self._found(self._matcher.match(query))
            pdq_hex = pdq_hash(rgb).hex() if found else None
            return ScannedImage(hashlib.sha256(data).hexdigest(), pdq_hex), found

    def match_signature(self, signature: Signature) -> tuple[ScannedImage, list[Found]]:
        """Match a signature made client-side (see matching.SignatureQuery)."""
        scanned = ScannedImage(signature.sha256, signature.pdq["original"].hex())
        with self._slots:
            self._catch_up()
            return scanned, self._found(self._matcher.match(SignatureQuery(signature)))

    def _catch_up(self) -> None:
        """Apply the changes committed before this match that the feed has not brought yet."""
        if self.registry.head_seq() != self._seq:
            self.sync()

    def _found(self, matches: list[Match]) -> list[Found]:
        """Every registered photo each match stands for (all owners of the matched entry),
        read from the registry now: a photo withdrawn while the match was being verified is
        gone from the registry, so it is not reported."""
        found = []
        for match in matches:
            owners = self.entries.owners(match.photo_id)
            photos = self.registry.photos_by_id(owners)
            found += [
                Found(photos[owner], replace(match, photo_id=owner))
                for owner in owners
                if owner in photos
            ]
        return found

    def _imported_vpdq(self, path: str, limits: VideoLimits, duration: float) -> list[VpdqHit]:
        """The imported vPDQ signals a video file matches by Meta's decision (none, and no
        hashing, when nothing was imported). The signals are read again only when more were
        imported since (they are never changed, only added); VideoError if unreadable."""
        last = self.registry.last_imported_vpdq()
        if last == 0:
            return []
        if last != self._vpdq_last:
            self._vpdq_bank, self._vpdq_last = VpdqBank(self.registry.imported_vpdq()), last
        if is_animation(path):  # vPDQ hashes video streams only
            return []
        with self._slots:
            try:
                query = vpdq_hash(path, limits=limits)
            except VideoError:  # no frame rate to number frames by: vPDQ cannot hash it
                return []
            return self._vpdq_bank.lookup(query, duration)

    def match_video(self, path: str, limits: VideoLimits) -> MatchedVideo:
        """Match a video file against registered videos and photos, and imported vPDQ;
        VideoError if it is unreadable.

        The matching slots are taken a sampled frame at a time, so one long video never holds
        back the images matched beside it.
        """
        sha256 = file_digests(path)[0]
        self._catch_up()
        frames = self.registry.video_frames()
        videos = {v.video_id: v for v in self.registry.videos()}
        scanned = scan_video(
            path,
            self._matcher,
            self.entries.owners,
            frames,
            {video_id: v.duration for video_id, v in videos.items()},
            limits=limits,
            slot=lambda: self._slots,
        )
        photos = self.registry.photos_by_id([m.target for m in scanned.matches if m.is_photo])
        found = []
        for match in scanned.matches:
            held = photos.get(match.target) if match.is_photo else videos.get(match.target)
            if held is not None:  # withdrawn meanwhile: not reported
                found.append(FoundInVideo(held.subject, held.label, match))
        return MatchedVideo(sha256, found, self._imported_vpdq(path, limits, scanned.duration))

    def lookup_pdq(self, hex_hash: str, max_distance: int) -> list[tuple[str, int]]:
        return self.pdq.lookup(hex_hash, max_distance)
