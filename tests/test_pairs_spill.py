"""The temporary store that keeps a collection's signatures out of memory during pairs."""

from __future__ import annotations

import numpy as np
import pytest

from counterfake.pairs.spill import SpilledSignatures
from counterfake.parallel import in_parallel
from counterfake.signature.extract import Signature, make_signature


def _same(a: Signature, b: Signature) -> bool:
    sides = [(a.features, b.features), (a.mirrored, b.mirrored)]
    return (
        (a.label, a.sha256, a.width, a.height, a.frame_width, a.frame_height)
        == (b.label, b.sha256, b.width, b.height, b.frame_width, b.frame_height)
        and np.array_equal(a.grid, b.grid)
        and all(
            np.array_equal(getattr(x, name), getattr(y, name))
            and getattr(x, name).dtype == getattr(y, name).dtype
            for x, y in sides
            for name in ("xy", "size", "angle", "octave", "descriptors")
        )
    )


def test_signatures_read_back_as_written_here_and_in_forked_workers(photo):
    signatures = {
        1: make_signature(photo, "photo.jpg", "a" * 64, exchange=False, face=False),
        2: make_signature(photo[:400, :300], "crop.jpg", "b" * 64, exchange=False, face=False),
    }
    store = SpilledSignatures()
    try:
        for key, signature in signatures.items():
            store[key] = signature
        assert len(store) == 2 and 1 in store and 3 not in store
        assert all(_same(store[key], signature) for key, signature in signatures.items())
        read_by_workers = list(in_parallel(store.__getitem__, [1, 2, 1], 2, lambda: None))
        assert all(_same(s, signatures[k]) for s, k in zip(read_by_workers, [1, 2, 1], strict=True))
        with pytest.raises(KeyError):
            store[3]
    finally:
        store.close()
    assert not store.path.exists()
