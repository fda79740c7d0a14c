"""Registered photos that are the same picture share one entry of the candidate index.

A photo may rightly be registered many times: a viral photo, a burst of near-identical shots,
a public figure's picture registered by several helplines, or one helpline uploading the same
signature to many subjects. Filed separately, those copies crowd every key of the photo (the
candidate index passes over crowded keys, see candidates.py) and fill the few candidates the
matcher verifies, so that one registrar's copies could hide another's photo from every match.

So the candidate index holds each picture once. A registration whose features are identical
to an indexed entry's (same descriptors, positions and frame: the same signature under another
label or file hash) joins that entry at once; one whose PDQ hash is within
NEAR_IDENTICAL_BITS of an entry's, and which the injected ``same_photo`` check verifies as the
same picture (the engine verifies the geometry, as a match does), joins it too (a re-encode of
the same photo). Everything else is an entry of its own. An entry is filed under the id of one
of its owners; a match of it is a match of every owner, and reaches each of them.

When the owner an entry is filed under is withdrawn, the next owner's signature is indexed in
its place, so the others keep matching. Writers (``add``, ``remove``) are called by one thread
at a time (the engine's sync); readers (``owners``) may run at any time.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from counterfake.index.compact import AnyIndex
from counterfake.index.pdq import PdqIndex
from counterfake.signature.extract import Signature

NEAR_IDENTICAL_BITS = 8  # of PDQ's 256: a re-encode of the same picture, not another one
_NEAR_CANDIDATES = 3  # entries within NEAR_IDENTICAL_BITS verified before filing a new one

SignatureOf = Callable[[int], Signature]
SamePhoto = Callable[[Signature, Signature], bool]


def content_digest(signature: Signature) -> bytes:
    """What makes two signatures the same content: features, mirrored features and frame
    (not the label or the file's hash, which a copy may change freely)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{signature.frame_width}x{signature.frame_height}".encode())
    for features in (signature.features, signature.mirrored):
        digest.update(features.descriptors.tobytes())
        digest.update(features.xy.tobytes())
    return digest.digest()


@dataclass(frozen=True)
class EntryArrays:
    """:class:`SharedEntries` as plain arrays: what index/packed.py writes and reads back."""

    entries: np.ndarray  # (entries,) int64: the id each entry is filed under
    digests: np.ndarray  # (entries, 16) uint8: its content digest
    pdq: np.ndarray  # (entries, 32) uint8: its PDQ hash (original orientation)
    canonical: np.ndarray  # (entries,) uint8: 1 where identical registrations join this entry
    photos: np.ndarray  # (photos,) int64: every registered photo indexed...
    photo_entries: np.ndarray  # (photos,) int64: ...and the entry it belongs to
    shared: np.ndarray  # (n,) int64: the entries with several owners...
    owner_counts: np.ndarray  # (n,) int64: ...how many each has...
    owners: np.ndarray  # (sum of owner_counts,) int64: ...and who, in the order they came


class SharedEntries:
    """The candidate index's entries and the registered photos each one stands for."""

    def __init__(self, index: AnyIndex, same_photo: SamePhoto | None = None) -> None:
        self.index = index
        self.same_photo = same_photo
        self._lock = threading.Lock()
        self._entry: dict[int, int] = {}  # photo id -> the id its entry is filed under
        self._owners: dict[int, list[int]] = {}  # entry -> its owners, where there are several
        self._by_content: dict[bytes, int] = {}  # content digest -> entry
        self._content: dict[int, bytes] = {}  # entry -> its content digest
        self._pdq = PdqIndex()  # each entry's PDQ hash (original orientation)

    def __len__(self) -> int:
        """How many registered photos (not entries) are indexed."""
        return len(self._entry)

    def __contains__(self, photo_id: int) -> bool:
        return photo_id in self._entry

    @property
    def entries(self) -> int:
        """How many entries the candidate index holds for them."""
        return len(self._content)

    def owners(self, entry: int) -> list[int]:
        """Every registered photo a candidate of the index stands for (itself at least)."""
        with self._lock:
            return list(self._owners.get(entry, (entry,)))

    def arrays(self) -> EntryArrays:
        """What this holds, as arrays (call it while no writer runs)."""
        pdq = dict(self._pdq.items())
        with self._lock:
            entries = list(self._content)
            shared = list(self._owners)
            return EntryArrays(
                np.array(entries, np.int64),
                _byte_rows([self._content[entry] for entry in entries], 16),
                _byte_rows([bytes.fromhex(pdq[str(entry)]) for entry in entries], 32),
                np.array([self._by_content.get(self._content[e]) == e for e in entries], np.uint8),
                np.fromiter(self._entry.keys(), np.int64, len(self._entry)),
                np.fromiter(self._entry.values(), np.int64, len(self._entry)),
                np.array(shared, np.int64),
                np.array([len(self._owners[entry]) for entry in shared], np.int64),
                np.array([owner for entry in shared for owner in self._owners[entry]], np.int64),
            )

    @classmethod
    def from_arrays(
        cls, index: AnyIndex, held: EntryArrays, same_photo: SamePhoto | None = None
    ) -> SharedEntries:
        """The entries ``arrays`` was taken from, over ``index`` (which holds them already)."""
        entries = cls(index, same_photo)
        ids = held.entries.tolist()
        digests = [bytes(row) for row in held.digests]
        entries._content = dict(zip(ids, digests, strict=True))
        entries._by_content = {
            digest: entry
            for entry, digest, canonical in zip(ids, digests, held.canonical, strict=True)
            if canonical
        }
        pdq = (bytes(row).hex() for row in held.pdq)
        entries._pdq.add_many(zip(map(str, ids), pdq, strict=True))
        entries._entry = dict(zip(held.photos.tolist(), held.photo_entries.tolist(), strict=True))
        ends = np.cumsum(held.owner_counts).tolist()
        owners = held.owners.tolist()
        if (ends[-1] if ends else 0) != len(owners):
            raise ValueError("the entries' owner lists do not fit together")
        entries._owners = {
            entry: owners[end - count : end]
            for entry, count, end in zip(
                held.shared.tolist(), held.owner_counts.tolist(), ends, strict=True
            )
        }
        return entries

    def add(self, photo_id: int, signature: Signature, signature_of: SignatureOf) -> None:
        """Index a registered photo, or make it an owner of the entry holding its picture.

        ``signature_of`` reads an indexed entry's signature (for the near-identical check).
        """
        if photo_id in self._entry:
            return
        digest = content_digest(signature)
        entry = self._by_content.get(digest)
        if entry is None:
            entry = self._near(signature, signature_of)
        if entry is None:
            self._file(photo_id, signature, digest)
            with self._lock:
                self._entry[photo_id] = photo_id
            return
        with self._lock:
            self._entry[photo_id] = entry
            self._owners.setdefault(entry, [entry]).append(photo_id)

    def remove(self, photo_id: int, signature_of: SignatureOf) -> bool:
        """Forget a withdrawn photo; False if it was not indexed. When its entry was filed
        under it, the entry is filed again under the next owner still registered."""
        with self._lock:
            entry = self._entry.pop(photo_id, None)
            if entry is None:
                return False
            owners = self._owners.pop(entry, [entry])
            rest = [owner for owner in owners if owner != photo_id]
            if entry != photo_id:
                if len(rest) > 1:
                    self._owners[entry] = rest
                return True
        self.index.remove(entry)
        self._pdq.remove(str(entry))
        digest = self._content.pop(entry)
        if self._by_content.get(digest) == entry:
            del self._by_content[digest]
        self._refile(rest, signature_of)
        return True

    def _refile(self, owners: list[int], signature_of: SignatureOf) -> None:
        """File the entry of ``owners`` under the first of them still registered."""
        for position, owner in enumerate(owners):
            try:
                signature = signature_of(owner)
            except KeyError:  # withdrawn too; its own change will find it gone
                with self._lock:
                    self._entry.pop(owner, None)
                continue
            self._file(owner, signature, content_digest(signature))
            remaining = owners[position:]
            with self._lock:
                for other in remaining:
                    if other in self._entry:
                        self._entry[other] = owner
                if len(remaining) > 1:
                    self._owners[owner] = remaining
            return

    def _file(self, entry: int, signature: Signature, digest: bytes) -> None:
        self.index.add(entry, signature)
        self._by_content.setdefault(digest, entry)
        self._content[entry] = digest
        self._pdq.add(str(entry), signature.pdq["original"].hex())

    def _near(self, signature: Signature, signature_of: SignatureOf) -> int | None:
        """An entry holding the same picture as ``signature`` (near-identical), if any."""
        if self.same_photo is None:
            return None
        near = self._pdq.lookup(signature.pdq["original"].hex(), NEAR_IDENTICAL_BITS)
        for key, _distance in near[:_NEAR_CANDIDATES]:
            try:
                held = signature_of(int(key))
            except KeyError:
                continue
            if self.same_photo(signature, held):
                return int(key)
        return None


def _byte_rows(values: list[bytes], width: int) -> np.ndarray:
    """Byte strings of one width as rows of a uint8 array."""
    return np.frombuffer(b"".join(values), np.uint8).reshape(len(values), width)
