"""The candidate index packed into one file, so that a worker starts by reading it back instead
of decoding and indexing every registered signature.

Indexing a registry reads each signature from the database, decodes it, files its descriptors
and sorts ten tables over all of them; the packed file is mapped into memory instead, its
arrays used where they lie, and read once to check their CRC-32s (docs/speed.md has both times
at 100,000 photos). Copying the arrays out of the file had cost more than the rest of the load
(16 of 20 s at 100,000 photos, faulting in fresh memory and copying 4.6 GB); mapped privately,
the pages are the page cache's, shared by every worker on the machine, until a withdrawal
writes to one. So the file must be replaced by renaming, never rewritten in place (a worker
would fault on a page cut away). The file holds the index's segments as
they are in memory (descriptors, owners, liveness, the sorted tables and their offsets, each
photo's rows), the shared entries and their owners (index/owners.py), and a :class:`Stamp`:
which registry it was taken from and the last change of the registry's change feed it holds.
A worker that reads it applies the changes after that one from the feed, as it does for the
changes that come while it runs; loading.py decides when a file is stale, from the stamp.
The file holds either index: the multi-index hash (candidates.py) or the compact index
(compact.py, its arrays in index/packed_compact.py); a worker asks for the one it runs, and a
file holding the other is stale.

Layout: ``MAGIC``, every array's bytes one after another, a JSON header (format, the index
parameters the arrays depend on, the stamp, each array's name, type, shape, offset and CRC-32),
and a trailer (header length, the header's CRC-32, ``END``). The trailer is written last, so a
file cut short anywhere lacks it; a damaged byte fails its array's CRC-32. CRC-32 finds damage,
not tampering: the file is as trusted as the folder it lies in (anyone who may write there may
also write the registry's own files). It is written beside itself and renamed over the old one
(atomic.py), so a reader sees the old file or the new one, never half of one; one writer at a
time holds ``<file>.lock``, and the others skip their turn.
"""

from __future__ import annotations

import fcntl
import json
import mmap
import os
import struct
import sys
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import IO

import numpy as np

from counterfake.atomic import atomic_writer
from counterfake.index import candidates, packed_compact
from counterfake.index.candidates import CandidateIndex, SegmentArrays
from counterfake.index.compact import CompactIndex, Layout
from counterfake.index.owners import NEAR_IDENTICAL_BITS, EntryArrays, SamePhoto, SharedEntries
from counterfake.index.packed_compact import CompactArrays
from counterfake.signature.features import DESCRIPTOR_BYTES

FORMAT = 1
MAGIC = b"CFINDEX\n"
END = b"CFEND\n\x00\x00"
_TRAILER = struct.Struct("<QI8s")  # header length, header CRC-32, END
_CHUNK = 64 << 20  # bytes written or checksummed at a time
_ALIGN = 64  # each array starts at a multiple of this: mapped, it is aligned as numba expects
# What the multi-index hash's packed arrays depend on (the compact index's:
# packed_compact.layout_header): a file written with other values is stale, not corrupt.
LAYOUT = {
    "indexed_features": candidates.INDEXED_FEATURES,
    "orientations_indexed": 1,  # before the compact signature (issue 18), 2
    "hash_tables": candidates.HASH_TABLES,
    "key_bytes": candidates.KEY_BYTES,
    "descriptor_bytes": DESCRIPTOR_BYTES,
    "max_photo_id": candidates.MAX_PHOTO_ID,
    "near_identical_bits": NEAR_IDENTICAL_BITS,
    "byte_order": sys.byteorder,
}
_SEGMENT = {  # each segment's arrays and their types
    "codes": np.uint8,
    "owners": np.uint32,
    "alive": np.uint8,
    "rows": np.uint32,
    "offsets": np.uint32,
    "photos": np.int64,
    "starts": np.int64,
    "stops": np.int64,
}
_ENTRIES = {field.name: np.int64 for field in fields(EntryArrays)} | {
    "digests": np.uint8,
    "pdq": np.uint8,
    "canonical": np.uint8,
}
# The indexes a file holds, as the command line names them ("--index"), and as its errors do.
INDEX_KINDS = {"hash": "the multi-index hash", packed_compact.KIND: "the compact index"}
PackableIndex = CandidateIndex | CompactIndex
IndexArrays = list[SegmentArrays] | CompactArrays  # what index_arrays gives of either


class PackedIndexError(Exception):
    """A packed index file that cannot be used; ``problem`` says why, in a few words."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


@dataclass(frozen=True)
class Stamp:
    """Where a packed index stands: the registry it was taken from (its id), the last change
    of that registry's feed it holds, and that change as the registry recorded it."""

    registry: str
    seq: int
    change: str


@dataclass
class Packed:
    """What a packed file holds: the index and its entries, as of ``stamp``."""

    stamp: Stamp
    index: PackableIndex
    entries: SharedEntries


def kind_of(index: PackableIndex) -> str:
    """Which of INDEX_KINDS ``index`` is."""
    return packed_compact.KIND if isinstance(index, CompactIndex) else "hash"


def index_arrays(index: PackableIndex) -> IndexArrays:
    """The index as it answers now, as the arrays :func:`write_packed` writes."""
    if isinstance(index, CompactIndex):
        return CompactArrays(index.layout, index.segment_arrays())
    return index.segment_arrays()


def write_packed(
    path: str | os.PathLike,
    stamp: Stamp,
    index: IndexArrays,
    entries: EntryArrays,
) -> bool:
    """Write the packed file (atomically) of an index's arrays (:func:`index_arrays`); False,
    writing nothing, if another process is writing it now. OSError if it cannot be written."""
    target = Path(path)
    with _writer_lock(target) as held:
        if not held:
            return False
        if isinstance(index, CompactArrays):
            layout = packed_compact.layout_header(index.layout)
            segments = [{"dead": len(segment["dead"])} for segment in index.segments]
            arrays = packed_compact.named_arrays(index)
        else:
            layout = LAYOUT
            segments = [{"dead": int(segment.dead)} for segment in index]
            arrays = [
                (f"segment{number}.{name}", getattr(segment, name), np.dtype(dtype))
                for number, segment in enumerate(index)
                for name, dtype in _SEGMENT.items()
            ]
        arrays += [
            (f"entries.{name}", getattr(entries, name), np.dtype(dtype))
            for name, dtype in _ENTRIES.items()
        ]
        with atomic_writer(target, encoding=None) as out:
            out.write(MAGIC)
            listed, offset = [], len(MAGIC)
            for name, array, dtype in arrays:
                data = np.ascontiguousarray(array, dtype)
                padding = -offset % _ALIGN
                out.write(bytes(padding))
                offset += padding
                crc = _write(out, data.reshape(-1).view(np.uint8).data)
                listed.append([name, np.dtype(dtype).str, list(data.shape), offset, crc])
                offset += data.nbytes
            header = json.dumps(
                {
                    "format": FORMAT,
                    "layout": layout,
                    "stamp": asdict(stamp),
                    "segments": segments,
                    "arrays": listed,
                }
            ).encode()
            out.write(header)
            out.write(_TRAILER.pack(len(header), zlib.crc32(header), END))
            out.flush()
            os.fsync(out.fileno())
    return True


def read_stamp(path: str | os.PathLike, kind: str = "hash") -> Stamp:
    """The stamp of a packed file of the ``kind`` of index, from its header alone;
    FileNotFoundError if there is none, PackedIndexError if it is damaged, of another format
    or layout, or holds the other index."""
    with open(path, "rb") as source:
        return _stamp(_header(source, kind))


def read_packed(
    path: str | os.PathLike,
    same_photo: SamePhoto | None = None,
    kind: str = "hash",
    **index_options: bool,
) -> Packed:
    """The index (of ``kind``, built with ``index_options``) and entries a packed file holds;
    FileNotFoundError or PackedIndexError as for :func:`read_stamp`."""
    with open(path, "rb") as source:
        header = _header(source, kind)
        stamp = _stamp(header)
        try:
            listed = {name: tuple(rest) for name, *rest in header["arrays"]}
            dead = [int(segment["dead"]) for segment in header["segments"]]
        except (KeyError, TypeError, ValueError):
            raise PackedIndexError("its header does not list its arrays") from None
        # Private and writable: pages are shared with the page cache (and other workers) until
        # written to (a withdrawal marks rows dead), and the arrays are ordinary writable ones.
        mapped = mmap.mmap(
            source.fileno(),
            0,
            flags=mmap.MAP_PRIVATE,
            prot=mmap.PROT_READ | mmap.PROT_WRITE,
        )

    def read(name: str, dtype: np.dtype | type) -> np.ndarray:
        try:
            stored, shape, offset, crc = listed[name]
            count = int(np.prod(shape, dtype=np.int64))
            array = np.frombuffer(mapped, np.dtype(stored), count, offset).reshape(shape)
        except (KeyError, TypeError, ValueError):
            raise PackedIndexError(f"its header does not list {name} within the file") from None
        if array.dtype != np.dtype(dtype):
            raise PackedIndexError(f"its {name} is {stored}, not {np.dtype(dtype).str}")
        if offset % _ALIGN:
            raise PackedIndexError(f"its {name} does not start at a multiple of {_ALIGN} bytes")
        if _crc32(memoryview(mapped)[offset : offset + array.nbytes]) != crc:
            raise PackedIndexError(f"its {name} fails its checksum (the file is damaged)")
        return array

    held = EntryArrays(**{name: read(f"entries.{name}", dtype) for name, dtype in _ENTRIES.items()})
    try:
        index: PackableIndex
        if kind == packed_compact.KIND:
            index = packed_compact.read_index(Layout(), len(dead), read, **index_options)
        else:
            segments = [
                SegmentArrays(
                    **{name: read(f"segment{n}.{name}", dtype) for name, dtype in _SEGMENT.items()},
                    dead=rows_dead,
                )
                for n, rows_dead in enumerate(dead)
            ]
            index = CandidateIndex.from_segment_arrays(segments, **index_options)
        return Packed(stamp, index, SharedEntries.from_arrays(index, held, same_photo))
    except ValueError as error:
        raise PackedIndexError(f"its arrays do not fit together ({error})") from None


def _header(source: IO[bytes], kind: str) -> dict:
    """The JSON header, checked: magic, trailer, its CRC-32, format, and the layout of the
    ``kind`` of index asked for."""
    if source.read(len(MAGIC)) != MAGIC:
        raise PackedIndexError("not a packed counterfake index")
    size = source.seek(0, os.SEEK_END)
    if size < len(MAGIC) + _TRAILER.size:
        raise PackedIndexError("cut short (no trailer)")
    source.seek(size - _TRAILER.size)
    length, crc, end = _TRAILER.unpack(source.read(_TRAILER.size))
    if end != END or length > size - len(MAGIC) - _TRAILER.size:
        raise PackedIndexError("cut short or unfinished (no trailer)")
    source.seek(size - _TRAILER.size - length)
    raw = source.read(length)
    if zlib.crc32(raw) != crc:
        raise PackedIndexError("its header fails its checksum (the file is damaged)")
    try:
        header = json.loads(raw)
    except ValueError:
        raise PackedIndexError("its header is not readable") from None
    if header.get("format") != FORMAT:
        raise PackedIndexError(f"format {header.get('format')}, this version reads {FORMAT}")
    layout = header.get("layout")
    held = layout.get("index", "hash") if isinstance(layout, dict) else None
    if held != kind and held in INDEX_KINDS:
        raise PackedIndexError(f"holds {INDEX_KINDS[held]}, not {INDEX_KINDS[kind]}")
    expected = packed_compact.layout_header(Layout()) if kind == packed_compact.KIND else LAYOUT
    if layout != expected:
        raise PackedIndexError("written by a version of counterfake with another index layout")
    return header


def _stamp(header: dict) -> Stamp:
    try:
        return Stamp(**header["stamp"])
    except (KeyError, TypeError):
        raise PackedIndexError("its header has no stamp") from None


def _write(out: IO[bytes], data: memoryview) -> int:
    crc = 0
    for start in range(0, len(data), _CHUNK):
        chunk = data[start : start + _CHUNK]
        out.write(chunk)
        crc = zlib.crc32(chunk, crc)
    return crc


def _crc32(data: memoryview) -> int:
    """CRC-32 of mapped bytes, a chunk at a time (each chunk's pages are read in as it goes)."""
    crc = 0
    for start in range(0, len(data), _CHUNK):
        crc = zlib.crc32(data[start : start + _CHUNK], crc)
    return crc


@contextmanager
def _writer_lock(target: Path) -> Iterator[bool]:
    """Hold ``<target>.lock`` if no other process does; yields whether it is held."""
    with open(target.with_name(target.name + ".lock"), "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
