"""The compact index (index/compact.py) in the packed index file (index/packed.py).

The file holds it as it holds the multi-index hash: each segment's arrays as they are in
memory (photos, the offset of each word's postings, the postings' owners, signatures and
geometry, sorted by word) and its dead set (the photos withdrawn since the segment was built),
each checksummed, mapped into memory on read and used where they lie. The header's layout
names the index (``"index": "compact"``, which a file of the multi-index hash does not) and
every parameter of :class:`~counterfake.index.compact.Layout`, so a file written for the other
index, or with another layout, is stale and rebuilt, never read as this one. A version of
counterfake that knows only the multi-index hash finds the layout differs from its own, and
rebuilds too.

The arrays are checked to fit together before a search reads them: the search follows the
offsets into the postings without bounds checks (compiled code).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from counterfake.index.compact import CompactIndex, Layout
from counterfake.index.compact_segments import SegmentArrays
from counterfake.index.owners import NEAR_IDENTICAL_BITS

KIND = "compact"


@dataclass(frozen=True)
class CompactArrays:
    """A compact index as arrays: its layout and its segments' (``segment_arrays``)."""

    layout: Layout
    segments: list[SegmentArrays]


def layout_header(layout: Layout) -> dict:
    """What the packed arrays of an index with ``layout`` depend on, as the header keeps it."""
    return {
        "index": KIND,
        **asdict(layout),
        "bits": list(layout.bits),  # JSON has no tuples: compared with what it reads back
        "max_photo_id": layout.max_photo_id,
        "near_identical_bits": NEAR_IDENTICAL_BITS,
        "byte_order": sys.byteorder,
    }


def columns(layout: Layout) -> dict[str, np.dtype]:
    """Each segment's arrays and their types."""
    uint32 = np.dtype(np.uint32)
    return {
        "photos": uint32,
        "offsets": uint32,
        "owners": uint32,
        "signatures": layout.signature_dtype,
        "geometry": np.dtype(np.uint8),
        "dead": uint32,
    }


def named_arrays(index: CompactArrays) -> list[tuple[str, np.ndarray, np.dtype]]:
    """Every segment's arrays, each with its name in the file and its type."""
    types = columns(index.layout)
    return [
        (f"segment{number}.{name}", segment[name], dtype)
        for number, segment in enumerate(index.segments)
        for name, dtype in types.items()
    ]


def read_index(
    layout: Layout,
    segments: int,
    read: Callable[[str, np.dtype], np.ndarray],
    **index_options: bool,
) -> CompactIndex:
    """The index whose ``segments`` segments ``read(name, dtype)`` gives; ValueError if their
    arrays do not fit together."""
    types = columns(layout)
    parts = [
        {name: read(f"segment{number}.{name}", dtype) for name, dtype in types.items()}
        for number in range(segments)
    ]
    for part in parts:
        _check(layout, part)
    return CompactIndex.from_segment_arrays(layout, parts, **index_options)


def _check(layout: Layout, part: SegmentArrays) -> None:
    if any(array.ndim != 1 for array in part.values()):
        raise ValueError("a segment's arrays are not one-dimensional")
    offsets, postings = part["offsets"], len(part["owners"])
    if offsets.shape != ((1 << layout.word_bits) + 1,) or offsets[0] != 0:
        raise ValueError("a segment's offsets do not fit its layout's words")
    if int(offsets[-1]) != postings or np.any(offsets[1:] < offsets[:-1]):
        raise ValueError("a segment's offsets do not fit its postings")
    if not postings == len(part["signatures"]) == len(part["geometry"]):
        raise ValueError("a segment's postings do not fit together")
    for name in ("photos", "dead"):
        if np.any(part[name][1:] <= part[name][:-1]):
            raise ValueError(f"a segment's {name} are not sorted")
