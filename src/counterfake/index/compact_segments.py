"""The compact index's searchable segments (compact.py): postings sorted by word, an offset
per word, and how two segments are joined into one.

A segment never changes once built, except for the photos withdrawn from it (its dead set),
whose postings stay until the segment is rewritten. Segments are built from unsorted postings
with one counting sort, or joined from other segments' lists word by word: each part is sorted
already, so a join needs nothing beside the parts but the joined arrays, which is what lets a
ten-million-photo index (about 11.6 GB of postings) be built on a 24 GB machine.
"""

from __future__ import annotations

import numba
import numpy as np

from counterfake.index.compact_layout import Layout

CROWDED_ROWS = 64
CROWDED_MULTIPLE = 20

# One searchable segment as plain arrays, what index/packed_compact.py packs: "photos" (sorted
# uint32: every photo it was built with), "offsets" (uint32, where each word's postings begin),
# the postings sorted by word ("owners", "signatures", "geometry") and "dead" (sorted uint32).
SegmentArrays = dict[str, np.ndarray]


class Segment:
    """Postings sorted by word, with one offset per word; only the dead set changes."""

    def __init__(
        self,
        layout: Layout,
        photos: np.ndarray,
        words: np.ndarray,
        owners: np.ndarray,
        signatures: np.ndarray,
        geometry: np.ndarray,
    ) -> None:
        """``photos``: the ids of the photos held (sorted, uint32; a photo with no features
        has no postings and is still held)."""
        offsets = np.zeros((1 << layout.word_bits) + 1, np.uint32)
        order = np.empty(len(words), np.uint32)
        counting_sort(words, offsets, order)
        self.layout = layout
        self.offsets = offsets
        self.owners = owners[order]
        self.signatures = signatures[order]
        self.geometry = geometry[order]
        self.photos = photos
        self.dead: set[int] = set()
        self.crowded = max(CROWDED_ROWS, int(CROWDED_MULTIPLE * len(words) / len(offsets)))

    @classmethod
    def from_arrays(cls, layout: Layout, part: SegmentArrays) -> Segment:
        """A segment over arrays already sorted by word (read back from a packed file, used
        where they lie, not sorted again; index/packed_compact.py checks they fit together)."""
        segment = cls.__new__(cls)
        segment.layout, segment.offsets, segment.photos = layout, part["offsets"], part["photos"]
        segment.owners, segment.signatures = part["owners"], part["signatures"]
        segment.geometry, segment.dead = part["geometry"], set(part["dead"].tolist())
        lists, postings = len(segment.offsets), len(segment.owners)
        segment.crowded = max(CROWDED_ROWS, int(CROWDED_MULTIPLE * postings / lists))
        return segment

    def __len__(self) -> int:
        return len(self.photos) - len(self.dead)

    def holds(self, photo_id: int) -> bool:
        """Whether this segment answers with the photo (it is here and not withdrawn)."""
        if not 0 <= photo_id <= self.layout.max_photo_id:
            return False
        # as the array's own type: a Python int makes numpy convert every id, 400 us a call
        at = int(np.searchsorted(self.photos, np.uint32(photo_id)))
        found = at < len(self.photos) and int(self.photos[at]) == photo_id
        return found and photo_id not in self.dead

    @property
    def nbytes(self) -> int:
        arrays = (self.offsets, self.owners, self.signatures, self.geometry, self.photos)
        return sum(a.nbytes for a in arrays)

    def live_photos(self) -> np.ndarray:
        """The ids of the photos held and not withdrawn."""
        if not self.dead:
            return self.photos
        return self.photos[~np.isin(self.photos, np.fromiter(self.dead, np.uint32, len(self.dead)))]

    def alive(self) -> np.ndarray | None:
        """Which postings belong to photos not withdrawn (None: all of them)."""
        if not self.dead:
            return None
        dead = np.fromiter(self.dead, np.uint32, len(self.dead))
        return ~np.isin(self.owners // np.uint32(self.layout.orientations), dead)


def joined(layout: Layout, run: list[Segment]) -> Segment:
    """One segment of the live photos of ``run``, its lists each part's lists one after
    another: the parts are sorted already, so nothing is sorted again, and nothing is held
    beside the parts but the joined arrays."""
    photos = np.sort(np.concatenate([segment.live_photos() for segment in run]))
    alive = [segment.alive() for segment in run]
    offsets = np.zeros_like(run[0].offsets)
    for segment, kept in zip(run, alive, strict=True):
        offsets[1:] += _kept_per_word(segment.offsets, kept)
    np.cumsum(offsets, out=offsets)
    total = int(offsets[-1])
    owners = np.empty(total, np.uint32)
    signatures = np.empty(total, layout.signature_dtype)
    geometry = np.empty(total, np.uint8)
    filled = offsets[:-1].astype(np.int64)
    for segment, kept in zip(run, alive, strict=True):
        _append_lists(
            segment.offsets, kept, segment.owners, segment.signatures, segment.geometry,
            filled, owners, signatures, geometry,
        )  # fmt: skip
    part = {"photos": photos, "offsets": offsets, "owners": owners, "signatures": signatures}
    part |= {"geometry": geometry, "dead": np.zeros(0, np.uint32)}
    return Segment.from_arrays(layout, part)


@numba.njit(cache=True, nogil=True)
def _kept_per_word(offsets, kept):  # pragma: no cover - compiled
    """How many of each word's postings are kept (``kept`` None: all)."""
    counts = np.empty(offsets.shape[0] - 1, offsets.dtype)
    for word in range(counts.shape[0]):
        if kept is None:
            counts[word] = offsets[word + 1] - offsets[word]
        else:
            counts[word] = kept[offsets[word] : offsets[word + 1]].sum()
    return counts


@numba.njit(cache=True, nogil=True)
def _append_lists(
    offsets, kept, owners, signatures, geometry, filled, out_owners, out_signatures, out_geometry
):  # pragma: no cover - compiled
    """Append each word's kept postings to that word's list in the out arrays, from
    ``filled[word]`` on (advanced past them)."""
    for word in range(offsets.shape[0] - 1):
        at = filled[word]
        for i in range(offsets[word], offsets[word + 1]):
            if kept is None or kept[i]:
                out_owners[at] = owners[i]
                out_signatures[at] = signatures[i]
                out_geometry[at] = geometry[i]
                at += 1
        filled[word] = at


@numba.njit(cache=True, nogil=True)
def counting_sort(words, offsets, order):  # pragma: no cover - compiled
    """Postings ordered by word (stable), and where each word's postings begin."""
    for i in range(words.shape[0]):
        offsets[words[i] + 1] += 1
    for word in range(1, offsets.shape[0]):
        offsets[word] += offsets[word - 1]
    filled = offsets[:-1].copy()
    for i in range(words.shape[0]):
        order[filled[words[i]]] = i
        filled[words[i]] += 1
