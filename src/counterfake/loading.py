"""A registry loaded for matching: its signatures in a candidate index, and a matcher that
reads the few signatures it verifies through a small cache.

Both the scan (scan.py) and the service (service/engine.py) start here.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Protocol

from counterfake.duplicates import same_photo
from counterfake.index.candidates import CandidateIndex
from counterfake.index.owners import SharedEntries
from counterfake.matching import Matcher
from counterfake.registry import Registry
from counterfake.signature.extract import Signature
from counterfake.thresholds import Thresholds


class SignatureCache(Protocol):
    """Signatures by photo id, the most recently read kept in memory."""

    def __call__(self, photo_id: int) -> Signature: ...

    def cache_clear(self) -> None: ...


def index_registry(registry: Registry, index: CandidateIndex) -> SharedEntries:
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
    index: CandidateIndex,
    signature_of: Callable[[int], Signature],
    thresholds: Thresholds,
    cache_size: int,
) -> tuple[Matcher, SignatureCache]:
    """A matcher over ``index`` that keeps the ``cache_size`` signatures read most recently,
    and that cache (clear it when a photo is withdrawn)."""
    cached = lru_cache(maxsize=cache_size)(signature_of)
    return Matcher(index, cached, thresholds), cached
