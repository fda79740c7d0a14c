"""A registry loaded for matching: its signatures in a candidate index, and a matcher that
reads the few signatures it verifies through a small cache.

Both the scan (scan.py) and the service (service/engine.py) start here. The service reads its
candidate index from a packed file (index/packed.py) when it has one that fits the registry,
and otherwise indexes the registry and writes that file for the next start. Either index
may be asked for (``--index``): the multi-index hash, the default, or the compact index
(about 1.2 kB a photo instead of about 42 kB, at a cost in recall, docs/index.md).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from counterfake.duplicates import same_photo
from counterfake.index.candidates import CandidateIndex
from counterfake.index.compact import AnyIndex, AnyProposer, CompactIndex
from counterfake.index.owners import EntryArrays, SharedEntries
from counterfake.index.packed import (
    INDEX_KINDS,
    IndexArrays,
    PackableIndex,
    PackedIndexError,
    Stamp,
    index_arrays,
    read_packed,
    read_stamp,
    write_packed,
)
from counterfake.matching import Matcher
from counterfake.registry import Registry
from counterfake.signature.extract import Signature
from counterfake.thresholds import Thresholds

log = logging.getLogger(__name__)


class SignatureCache(Protocol):
    """Signatures by photo id, the most recently read kept in memory."""

    def __call__(self, photo_id: int) -> Signature: ...

    def cache_clear(self) -> None: ...


def new_index(kind: str = "hash", **options: bool) -> PackableIndex:
    """An empty index of ``kind`` (one of INDEX_KINDS), ``options`` as for either's
    constructor."""
    if kind not in INDEX_KINDS:
        raise ValueError(f"no index of kind {kind!r}: {', '.join(INDEX_KINDS)}")
    return CompactIndex(None, **options) if kind == "compact" else CandidateIndex(**options)


def index_registry(registry: Registry, index: AnyIndex) -> SharedEntries:
    """Every registered signature added to ``index`` (copies of one photo share an entry, see
    index/owners.py), which is then sorted into its search tables; the entries' owners.

    Signatures stream in pages and each is dropped once indexed: a large registry never sits
    in memory whole.
    """
    entries = SharedEntries(index, same_photo)
    for photo_id, signature in registry.signatures():
        entries.add(photo_id, signature, registry.signature)
    index.prepare()
    return entries


def cached_matcher(
    index: AnyProposer,
    signature_of: Callable[[int], Signature],
    thresholds: Thresholds,
    cache_size: int,
) -> tuple[Matcher, SignatureCache]:
    """A matcher over ``index`` that keeps the ``cache_size`` signatures read most recently,
    and that cache (clear it when a photo is withdrawn)."""
    cached = lru_cache(maxsize=cache_size)(signature_of)
    return Matcher(index, cached, thresholds), cached


@dataclass
class LoadedCandidates:
    """A registry's candidate index and its entries' owners, as of change ``seq`` of its feed:
    the changes after it are still to be applied (applying one twice is harmless)."""

    index: AnyIndex
    entries: SharedEntries
    seq: int


def load_candidates(
    registry: Registry,
    packed: str | os.PathLike | None,
    kind: str = "hash",
    **index_options: bool,
) -> LoadedCandidates:
    """The registry's candidate index of ``kind``, read from the ``packed`` file when it fits
    the registry; otherwise indexed from the registry (and written to ``packed``, if given, for
    next time).

    A file that is missing, stale, damaged or holds the other kind of index is named in one
    logged line with its problem, and the registry is indexed instead: the file only ever
    saves time. A file older than the registry, but of its history, is used: the changes since
    are applied from the feed.
    """
    if packed is not None:
        try:
            problem = stale(registry, read_stamp(packed, kind))
            if problem is None:
                found = read_packed(packed, same_photo, kind, **index_options)
                return LoadedCandidates(found.index, found.entries, found.stamp.seq)
        except FileNotFoundError:
            problem = "not there yet"
        except PackedIndexError as error:
            problem = error.problem
        except OSError as error:
            problem = f"unreadable ({error.strerror})"
        log.warning("packed index %s: %s; indexing the registry instead", packed, problem)
    seq = registry.head_seq()
    index = new_index(kind, **index_options)
    loaded = LoadedCandidates(index, index_registry(registry, index), seq)
    if packed is not None:
        pack(registry, packed, seq, index_arrays(index), loaded.entries.arrays())
    return loaded


def stale(registry: Registry, stamp: Stamp) -> str | None:
    """Why a packed index with this stamp cannot stand for ``registry`` now (None if it can)."""
    if stamp.registry != registry.identity():
        return "written for another registry"
    head = registry.head_seq()
    if stamp.seq > head:
        return f"holds changes up to {stamp.seq}, the registry only up to {head}"
    if registry.change_stamp(stamp.seq) != stamp.change:
        return f"the registry's change {stamp.seq} is not the one it was written after"
    return None


def pack(
    registry: Registry,
    packed: str | os.PathLike,
    seq: int,
    index: IndexArrays,
    entries: EntryArrays,
) -> bool:
    """Write an index taken at change ``seq`` (``index_arrays``, ``SharedEntries.arrays``) to
    the packed file; False if it was not written: another process is writing it, or it could
    not be (logged in one line: the worker goes on without it)."""
    stamp = Stamp(registry.identity(), seq, registry.change_stamp(seq))
    try:
        return write_packed(packed, stamp, index, entries)
    except OSError as error:
        log.warning("packed index %s: not written (%s)", packed, error.strerror or error)
        return False
