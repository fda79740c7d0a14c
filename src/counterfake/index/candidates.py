"""The embedded candidate index: which registered photos share local features with an image?

Verifying a scanned image against every registered photo costs milliseconds per photo, so a
registry of 100,000 photos needs a shortlist first, and the shortlist must cost about the same
whatever the registry's size.

**Multi-index hashing.** Each registered photo contributes the first INDEXED_FEATURES descriptors
of its one stored orientation (a well-spread prefix, see features.py). Every descriptor is filed
under HASH_TABLES keys, each key being one 24-bit slice of the 256-bit descriptor: two descriptors
a few dozen bits apart very likely agree exactly on at least one of ten slices. A scanned image's
first VOTING_FEATURES descriptors (also spread-ordered) look up their slices, and the rows found
are compared with their full Hamming distance; so do its mirror image's, whose rows vote for the
photo's mirrored orientation (a photo's own mirror image is not stored: signature/record.py).

**Votes.** Each scanned descriptor keeps only its NEIGHBOURS nearest rows within MAX_DISTANCE, and
each of those votes once for its (photo, orientation), with a weight that falls with the distance
(((MAX_DISTANCE + 1 - d) / MAX_DISTANCE) ** 2). Keeping only the nearest rows matters: a scanned
image's clutter (a phone's interface, a watermark's text) lies within MAX_DISTANCE of many rows of
many photos, and letting all of them vote buries a small copy of the right photo; its nearest
rows are few and mostly the right ones. The most-voted go on to geometric verification, which uses
the full stored signature: the index only decides what is verified, never what matches.

**Crowded keys are skipped.** A slice that very many rows share (a flat patch, a plain edge,
text) says little about which photo a descriptor came from, yet scanning its bucket is most of a
lookup's cost. A bucket holding more than max(CROWDED_ROWS, CROWDED_MULTIPLE x its segment's
average) rows is passed over, as a text search passes over stop words; the descriptor is still
found through its other nine keys. (A one-off measurement over bench/speed.py's 100,000-photo
registry, not part of bench/: a bucket held 3 rows on average, the buckets scanned descriptors
fell into held 19 at the median, and those of more than 64 rows held two thirds of the rows a
lookup read; skipping them took the lookup from 28 to 13 ms with the same candidate recall,
where reading only their first 64 rows took 22 ms. bench/speed.py's profile shows the index
stage at 100,000 photos going from 28.0 to 11.2 ms.) The limit is per segment, so a key crowded
in one large segment may still be read in a small new one. A registry's photos are distinct
photos, so a crowded key is common ground; a collection searched for pairs (pairs/) may hold
a hundred copies of one photo, which crowd every one of that photo's keys, so its index reads
crowded keys in full (``skip_crowded_keys=False``).

**Layout.** Rows live in immutable segments. In a segment, each table is the segment's rows
sorted by bucket, with a dense offset array per bucket (a bucket is the low bits of a key, as many
as the segment has rows, at most all 24), so a lookup is two array reads. Photos added after the
last search are sorted into a new small segment; segments are merged when a newer one grows to
half the size of the one before (as a log-structured merge does), so a stream of additions never
re-sorts the whole index. A withdrawn photo's rows are marked dead at once; they are reclaimed when
the dead rows make up half the index. A batch job joins segments when it next searches; the
service's index leaves that to its feed thread (:meth:`CandidateIndex.compact`), which builds the
joined segment without holding the lock, so no match waits seconds for a join.

**Why the inner loop is compiled (numba).** A lookup meets about 300,000 rows at 100,000
photos (about a third of them outside crowded buckets); each costs one random read of a
32-byte descriptor. Vectorised numpy spent about 300 ns per row on the gathers and temporaries
around that read, the compiled loop about half of that, which is what keeps the shortlist
within tens of milliseconds at that size. faiss's binary multi-index hash does the same search
but keeps a C++ hash map node per bucket (about 90 kB of memory per photo at 10,000 photos)
and scans buckets of a fixed, shorter key.

Memory per indexed descriptor: 32 bytes of descriptor, 4 of owner, 1 of liveness and 4 per table
(77 bytes, 39.4 kB per photo of 2 x 256 descriptors), plus each table's offsets (up to 671 MB
in all, whatever the size beyond 8 million rows).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numba
import numpy as np

from counterfake.index.votes import (
    MAX_DISTANCE,
    NEIGHBOURS,
    ORIENTATIONS,
    Candidate,
    nearer,
    vote_both,
)
from counterfake.signature import hamming
from counterfake.signature.extract import Signature
from counterfake.signature.features import DESCRIPTOR_BYTES

INDEXED_FEATURES = 256  # of a photo's, one orientation
VOTING_FEATURES = 600  # of a scanned image's spread-ordered descriptors, used to vote
HASH_TABLES = 10
KEY_BYTES = 3  # a 24-bit slice per table: the tables use bytes 0..29 of the descriptor
_MAX_BUCKET_BITS = 8 * KEY_BYTES
_MIN_BUCKET_BITS = 8
CROWDED_ROWS = 64  # a bucket with more rows than this (and than CROWDED_MULTIPLE x the
CROWDED_MULTIPLE = 20  # segment's average) is a stop word: its rows are not scanned
_REBUILD_DEAD_SHARE = 0.5
_PAGE_BYTES = 4096
MAX_PHOTO_ID = (2**32 - 1) // ORIENTATIONS
_BLOCK_ROWS = 1 << 21  # rows per block of additions (64 MB, see _Additions)


@dataclass(frozen=True)
class SegmentArrays:
    """One searchable segment as plain arrays: what index/packed.py writes and reads back.

    ``photos``, ``starts`` and ``stops`` list the live photos and their rows; rows outside
    them are dead (``alive`` says which).
    """

    codes: np.ndarray  # (rows, DESCRIPTOR_BYTES) uint8
    owners: np.ndarray  # (rows,) uint32
    alive: np.ndarray  # (rows,) uint8
    rows: np.ndarray  # (HASH_TABLES, rows) uint32: each table's rows by bucket
    offsets: np.ndarray  # (HASH_TABLES, buckets + 1) uint32
    photos: np.ndarray  # (photos,) int64
    starts: np.ndarray  # (photos,) int64
    stops: np.ndarray  # (photos,) int64
    dead: int


def _keys(descriptors: np.ndarray) -> np.ndarray:
    """(HASH_TABLES, n) uint32: the slice of each descriptor that each table files it under."""
    keys = np.zeros((HASH_TABLES, len(descriptors)), np.uint32)
    for table in range(HASH_TABLES):
        for byte in range(KEY_BYTES):
            keys[table] |= descriptors[:, table * KEY_BYTES + byte].astype(np.uint32) << 8 * byte
    return keys


def _bucket_bits(rows: int) -> int:
    """About one bucket per row: small segments stay small, large ones use the whole key."""
    return int(np.clip(np.ceil(np.log2(max(rows, 1))), _MIN_BUCKET_BITS, _MAX_BUCKET_BITS))


class _Segment:
    """An immutable block of indexed rows with its bucketed tables; only liveness changes."""

    def __init__(
        self,
        codes: np.ndarray,
        owners: np.ndarray,
        spans: dict[int, range],
        tables: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        """Sort the rows into their tables, unless ``tables`` (rows, offsets) brings them
        already sorted (a segment read back from a packed file)."""
        self.codes = np.ascontiguousarray(codes).reshape(-1, DESCRIPTOR_BYTES)
        self.owners = owners
        self.alive = np.ones(len(owners), np.uint8)
        self.dead = 0
        self.spans = spans  # photo_id -> its rows in this segment
        bits = _bucket_bits(len(owners))
        self.bucket_mask = np.uint32((1 << bits) - 1)
        self.crowded = max(CROWDED_ROWS, int(CROWDED_MULTIPLE * len(owners) / (1 << bits)))
        if tables is not None:
            self.rows, self.offsets = tables
            shapes = (HASH_TABLES, len(owners)), (HASH_TABLES, (1 << bits) + 1)
            if (self.rows.shape, self.offsets.shape) != shapes:
                raise ValueError("a segment's tables do not fit its rows")
            return
        self.rows = np.empty((HASH_TABLES, len(owners)), np.uint32)
        self.offsets = np.zeros((HASH_TABLES, (1 << bits) + 1), np.uint32)
        words = hamming.as_words(self.codes)
        for table in range(HASH_TABLES):
            _file_rows(words, table, self.bucket_mask, self.rows[table], self.offsets[table])
        _read_every_page(self.codes, self.owners, self.alive, self.rows, self.offsets)

    def __len__(self) -> int:
        return len(self.owners)

    @property
    def nbytes(self) -> int:
        arrays = (self.codes, self.owners, self.alive, self.rows, self.offsets)
        return sum(a.nbytes for a in arrays)

    def kill(self, photo_id: int) -> None:
        """Mark a photo's rows dead."""
        span = self.spans.pop(photo_id, range(0))
        self.alive[span.start : span.stop] = 0
        self.dead += len(span)


class _Additions:
    """Photos added since the tables were last sorted, their rows packed into large blocks.

    A worker adds its whole registry before the first sort. Kept as two small arrays per photo,
    those rows went to the allocator's heap, and after the sort freed them the heap kept their
    pages: 22 kB per photo stayed in the process (a one-off measurement at 20,000 photos, not
    part of bench/, beside the 41.5 kB per photo the index's rows then took). Blocks of 64 MB
    are given back to the system when freed: glibc's malloc may serve requests of up to 32 MB
    from its heap (8 MB blocks stayed there too).
    """

    def __init__(self) -> None:
        self._blocks: list[np.ndarray] = []
        self._used = 0  # rows filled in the last block
        self._photos: dict[int, tuple[int, int, int]] = {}  # block, first row, rows

    def __len__(self) -> int:
        return len(self._photos)

    def __contains__(self, photo_id: int) -> bool:
        return photo_id in self._photos

    def add(self, photo_id: int, descriptors: np.ndarray) -> None:
        count = len(descriptors)
        if not self._blocks or self._used + count > len(self._blocks[-1]):
            self._blocks.append(np.empty((max(_BLOCK_ROWS, count), DESCRIPTOR_BYTES), np.uint8))
            self._used = 0
        block, first = self._blocks[-1], self._used
        block[first : first + count] = descriptors
        self._photos[photo_id] = (len(self._blocks) - 1, first, count)
        self._used += count

    def discard(self, photo_id: int) -> bool:
        """Forget a photo's rows; False if it was not here."""
        return self._photos.pop(photo_id, None) is not None

    def segment(self) -> _Segment:
        """The added photos as a searchable segment, in the order they were added.

        Each block is freed once its rows are copied, so that building a registry's first
        segment needs little more memory than the segment itself. This empties the additions.
        """
        places = list(self._photos.values())  # in the order added, so blocks never go back
        counts = np.array([count for _, _, count in places], np.int64)
        codes = np.empty((int(counts.sum()), DESCRIPTOR_BYTES), np.uint8)
        blocks, self._blocks, self._used = self._blocks, [], 0
        row = freed = 0
        for block, first, count in places:
            while freed < block:
                blocks[freed] = None
                freed += 1
            codes[row : row + count] = blocks[block][first : first + count]
            row += count
        del blocks
        owner = np.fromiter(self._photos, np.int64, len(places)) * ORIENTATIONS
        owners = np.repeat(owner, counts).astype(np.uint32)  # one orientation: see candidates
        ends = np.cumsum(counts)
        spans = {
            photo_id: range(int(end - count), int(end))
            for photo_id, end, count in zip(self._photos, ends, counts, strict=True)
        }
        self._photos = {}
        return _Segment(codes, owners, spans)


class CandidateIndex:
    """An in-process index over registered photos' descriptors; safe to share between threads."""

    def __init__(self, *, skip_crowded_keys: bool = True, merge_on_search: bool = True) -> None:
        """``merge_on_search=False`` leaves joining segments to :meth:`compact`, for a service
        whose searches must not wait for one: joining segments that hold 100,000 photos sorts
        51 million rows in ten tables: about 40 s here, an estimate scaled from 8.4 s measured
        once at 20,000 photos (not by bench/), all of it with the lock held had a search done
        it.
        """
        self.skip_crowded_keys = skip_crowded_keys
        self.merge_on_search = merge_on_search
        self._lock = threading.Lock()
        self._compacting = threading.Lock()  # one compaction at a time
        self._segments: list[_Segment] = []
        self._pending = _Additions()
        self._where: dict[int, _Segment] = {}  # photo_id -> the segment holding its rows

    def __len__(self) -> int:
        return len(self._where) + len(self._pending)

    def __contains__(self, photo_id: int) -> bool:
        return photo_id in self._where or photo_id in self._pending

    @property
    def unsorted(self) -> int:
        """Photos added since the tables were last sorted: the next search sorts them first."""
        return len(self._pending)

    @property
    def nbytes(self) -> int:
        """Memory held by the searchable tables (what a registry of this size costs)."""
        self.prepare()
        return sum(s.nbytes for s in self._segments)

    def prepare(self) -> None:
        """Sort what was added into the searchable tables now rather than at the next search.

        Call it before forking workers, so that they share the tables instead of each sorting
        its own copy.
        """
        with self._compacting, self._lock:
            self._settle()
            self._join_due()

    def compact(self) -> None:
        """Join segments as :meth:`_due` asks, each joined segment built outside the lock.

        Searches, additions and withdrawals go on during the build; a photo withdrawn or
        replaced meanwhile is marked dead in the joined segment before it takes the old ones'
        place.
        """
        with self._compacting:
            while True:
                with self._lock:
                    self._settle()
                    run = self._due()
                    spans = [dict(segment.spans) for segment in run]  # kills pop them meanwhile
                if not run:
                    return
                joined = _joined([_live_rows(s, sp) for s, sp in zip(run, spans, strict=True)])
                with self._lock:
                    self._replace(run, joined)

    def add(self, photo_id: int, signature: Signature) -> None:
        """Index a photo's descriptors (re-adding an indexed photo replaces it)."""
        if not 0 <= photo_id <= MAX_PHOTO_ID:
            raise ValueError(f"photo id {photo_id} is outside the index's range 0..{MAX_PHOTO_ID}")
        with self._lock:
            self._forget(photo_id)
            self._pending.add(photo_id, signature.features.descriptors[:INDEXED_FEATURES])

    def remove(self, photo_id: int) -> None:
        """Stop answering with this photo, at once."""
        with self._lock:
            self._forget(photo_id)

    def segment_arrays(self) -> list[SegmentArrays]:
        """The index as it answers now, as arrays (pending additions sorted in first).

        The arrays are the segments' own, read-only from here on, except ``alive``, which is
        copied: a withdrawal after this call does not change what was taken.
        """
        with self._lock:
            self._settle()
            taken = []
            for segment in self._segments:
                photos = np.fromiter(segment.spans, np.int64, len(segment.spans))
                spans = list(segment.spans.values())
                taken.append(
                    SegmentArrays(
                        segment.codes,
                        segment.owners,
                        segment.alive.copy(),
                        segment.rows,
                        segment.offsets,
                        photos,
                        np.fromiter((span.start for span in spans), np.int64, len(spans)),
                        np.fromiter((span.stop for span in spans), np.int64, len(spans)),
                        segment.dead,
                    )
                )
            return taken

    @classmethod
    def from_segment_arrays(cls, parts: list[SegmentArrays], **options: bool) -> CandidateIndex:
        """An index answering as the one ``segment_arrays`` was taken from; ValueError if the
        arrays do not fit together (``options`` as for the constructor)."""
        index = cls(**options)
        for part in parts:
            if not (len(part.photos) == len(part.starts) == len(part.stops)):
                raise ValueError("a segment's photos and their rows do not fit together")
            if len(part.starts) and (part.starts.min() < 0 or part.stops.max() > len(part.owners)):
                raise ValueError("a segment's photo rows lie outside it")
            if part.alive.shape != part.owners.shape:
                raise ValueError("a segment's liveness does not fit its rows")
            starts, stops = part.starts.tolist(), part.stops.tolist()
            spans = dict(zip(part.photos.tolist(), map(range, starts, stops), strict=True))
            segment = _Segment(part.codes, part.owners, spans, (part.rows, part.offsets))
            segment.alive, segment.dead = part.alive, part.dead
            index._append(segment)
        return index

    def candidates(
        self, descriptors: np.ndarray, limit: int, mirrored: np.ndarray | None = None
    ) -> list[Candidate]:
        """The ``limit`` (photo, orientation) pairs with the most votes, best first;
        ``mirrored``: the descriptors of the scanned image's mirror image, which find the photos
        it shows mirrored (the index holds one orientation of each)."""
        return vote_both(self.nearest, descriptors, mirrored, limit)

    def nearest(self, descriptors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each voting descriptor's NEIGHBOURS nearest rows, as (owner, distance) arrays of
        shape (descriptors, NEIGHBOURS), nearest first (-1, MAX_DISTANCE + 1 where none): what
        :func:`vote` counts, and what index shards return for :func:`merge_nearest`."""
        descriptors = np.ascontiguousarray(descriptors[:VOTING_FEATURES], np.uint8)
        keys = _keys(descriptors)
        codes = hamming.as_words(descriptors)
        with self._lock:  # segments never change shape once made: search them outside the lock
            self._settle()
            if self.merge_on_search:
                self._join_due()
            segments = list(self._segments)
        nearest_owner = np.full((len(codes), NEIGHBOURS), -1, np.int64)
        nearest_distance = np.full((len(codes), NEIGHBOURS), MAX_DISTANCE + 1, np.int64)
        nearest_row = np.full((len(codes), NEIGHBOURS), -1, np.int64)
        first_row = 0
        for segment in segments:
            _nearest_rows(
                codes,
                keys,
                keys & segment.bucket_mask,
                segment.offsets,
                segment.rows,
                hamming.as_words(segment.codes),
                segment.owners,
                segment.alive,
                segment.crowded if self.skip_crowded_keys else len(segment),
                first_row,
                nearest_owner,
                nearest_distance,
                nearest_row,
            )
            first_row += len(segment)
        return nearest_owner, nearest_distance

    def _settle(self) -> None:
        """Turn pending additions into a segment (small: a search waits for it)."""
        if self._pending:
            self._append(self._pending.segment())
            self._pending = _Additions()

    def _due(self) -> list[_Segment]:
        """The segments to join now: all of them once half their rows are dead; otherwise the
        two newest once the newer has grown to half the older (a log-structured merge)."""
        segments = self._segments
        if sum(s.dead for s in segments) > _REBUILD_DEAD_SHARE * max(1, sum(map(len, segments))):
            return list(segments)
        if len(segments) > 1 and 2 * len(segments[-1]) >= len(segments[-2]):
            return segments[-2:]
        return []

    def _join_due(self) -> None:
        while run := self._due():
            self._replace(run, _joined([_live_rows(s, s.spans) for s in run]))

    def _replace(self, run: list[_Segment], joined: _Segment) -> None:
        """Put ``joined`` where the (adjacent) segments of ``run`` were, unless a search joined
        them meanwhile (an index that also merges on search)."""
        if not all(any(s is r for s in self._segments) for r in run):
            return
        first = next(i for i, s in enumerate(self._segments) if s is run[0])
        self._segments = [s for s in self._segments if all(s is not r for r in run)]
        if len(joined):
            self._segments.insert(first, joined)
        for photo_id in list(joined.spans):
            if any(self._where.get(photo_id) is r for r in run):
                self._where[photo_id] = joined
            else:  # withdrawn or added again while the joined segment was built
                joined.kill(photo_id)

    def _append(self, segment: _Segment) -> None:
        self._segments.append(segment)
        for photo_id in segment.spans:
            self._where[photo_id] = segment

    def _forget(self, photo_id: int) -> None:
        if not self._pending.discard(photo_id) and photo_id in self._where:
            self._where.pop(photo_id).kill(photo_id)


def _read_every_page(*arrays: np.ndarray) -> None:
    """Read one byte of each memory page of freshly built tables.

    On this project's virtual machine, the first searches over a freshly built 100,000-photo
    index took up to 25 times their later time, all of it user CPU time with no page fault
    (bench/speed.py's cold pass: up to 655 ms). Reading each page once, about 1 s for that
    index, removed it (the cold pass since: 77.5 ms at most); the cause was not found. Small
    segments cost next to nothing.
    """
    for array in arrays:
        int(array.reshape(-1).view(np.uint8)[::_PAGE_BYTES].max(initial=0))


def _live_rows(
    segment: _Segment, spans: dict[int, range]
) -> tuple[np.ndarray, np.ndarray, dict[int, range]]:
    """A segment's live rows and the spans of its photos (as ``spans`` lists them), renumbered
    from 0; a photo whose rows are all dead keeps an empty span."""
    keep = segment.alive.astype(bool)
    live_before = np.concatenate([[0], np.cumsum(keep)])  # live rows before each row
    renumbered = {
        photo_id: range(int(live_before[span.start]), int(live_before[span.stop]))
        for photo_id, span in spans.items()
    }
    return segment.codes[keep], segment.owners[keep], renumbered


def _joined(parts: list[tuple[np.ndarray, np.ndarray, dict[int, range]]]) -> _Segment:
    spans, start = {}, 0
    for codes, _, part_spans in parts:
        spans |= {p: range(s.start + start, s.stop + start) for p, s in part_spans.items()}
        start += len(codes)
    return _Segment(
        np.concatenate([codes for codes, _, _ in parts]),
        np.concatenate([owners for _, owners, _ in parts]),
        spans,
    )


@numba.njit(inline="always")
def _key(codes: np.ndarray, row: int, table: int) -> np.uint32:
    """The row's key in this table, read from its descriptor (as _keys computes it)."""
    bit = table * 8 * KEY_BYTES
    word, shift = bit // 64, np.uint64(bit % 64)
    value = codes[row, word] >> shift
    if bit % 64 > 64 - 8 * KEY_BYTES:
        value |= codes[row, word + 1] << np.uint64(64 - bit % 64)
    return np.uint32(value & np.uint64((1 << (8 * KEY_BYTES)) - 1))


@numba.njit(cache=True, nogil=True)
def _file_rows(codes, table, bucket_mask, rows, offsets):  # pragma: no cover - compiled
    """Sort a segment's rows by their bucket in one table: a counting sort, which keeps rows of
    the same bucket in row order. numpy's stable argsort compares keys and took 1.8 s per table
    at 20,000 photos (10 million rows, a one-off profile outside bench/); counting needs two
    passes over the rows, and no (HASH_TABLES, rows) array of keys is held while the tables are
    built."""
    for row in range(codes.shape[0]):
        offsets[(_key(codes, row, table) & bucket_mask) + 1] += 1
    for bucket in range(1, offsets.shape[0]):
        offsets[bucket] += offsets[bucket - 1]
    filled = offsets[:-1].copy()
    for row in range(codes.shape[0]):
        bucket = _key(codes, row, table) & bucket_mask
        rows[filled[bucket]] = row
        filled[bucket] += 1


@numba.njit(cache=True, nogil=True)
def _nearest_rows(
    query,
    keys,
    buckets,
    offsets,
    rows,
    codes,
    owners,
    alive,
    crowded,
    first_row,
    best_owner,
    best_distance,
    best_row,
):
    """Update each scanned descriptor's nearest live rows (kept sorted by distance) with this
    segment's rows that share one of its keys, passing over buckets of more than ``crowded``
    rows. A small segment's buckets hold several keys; the key is checked so that the answer
    does not depend on how the rows happen to be segmented. Row numbers are offset by
    ``first_row`` so that a row met again through another table, or another segment's row, is
    told apart. Of rows equally near, the one :func:`votes.nearer` ranks first is kept, so that
    the answer does not depend on the order rows are met in (shards merge to the same). Liveness
    is read only for a row near enough to be kept: most rows fail the distance test, and reading
    their liveness first cost one more random memory access per row."""
    neighbours = best_row.shape[1]
    for q in range(query.shape[0]):
        for table in range(buckets.shape[0]):
            key, bucket = keys[table, q], buckets[table, q]
            start, stop = offsets[table, bucket], offsets[table, bucket + 1]
            if stop - start > crowded:
                continue
            for i in range(start, stop):
                row = rows[table, i]
                if _key(codes, row, table) != key:
                    continue
                distance, owner = hamming.distance(codes, row, query, q), owners[row]
                last = neighbours - 1
                salt = keys[0, q]
                if not nearer(distance, owner, best_distance[q, last], best_owner[q, last], salt):
                    continue
                if not alive[row]:
                    continue
                numbered = first_row + row
                seen = False
                for j in range(neighbours):
                    seen |= best_row[q, j] == numbered
                if seen:
                    continue
                j = neighbours - 1
                while j > 0 and nearer(
                    distance, owner, best_distance[q, j - 1], best_owner[q, j - 1], salt
                ):
                    best_distance[q, j] = best_distance[q, j - 1]
                    best_owner[q, j] = best_owner[q, j - 1]
                    best_row[q, j] = best_row[q, j - 1]
                    j -= 1
                best_distance[q, j] = distance
                best_owner[q, j] = owner
                best_row[q, j] = numbered
