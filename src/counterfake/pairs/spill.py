"""Signatures of a whole collection, kept in a temporary SQLite file instead of in memory.

``counterfake pairs`` treats every image of a collection as registered: at 100,000 images their
signatures (local features of the image and of its mirror image, and the grid: about 60 KB each)
would need 6 GB of memory, while a query only ever looks at its dozen candidates. So they are
written once to a temporary file and read back one at a time; a small cache keeps the images
that many others are verified against (the original of a large cluster).

Each process reads through its own connection (the pairs passes fork workers, and a SQLite
connection must not cross a fork). Only what pairs needs is kept: no PDQ hashes, no face box.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from counterfake.signature.extract import Signature
from counterfake.signature.features import DESCRIPTOR_BYTES, LocalFeatures

CACHED = 256  # signatures kept decoded per process

_FIELDS = (  # LocalFeatures field, dtype, values per feature
    ("xy", np.float32, 2),
    ("size", np.float32, 1),
    ("angle", np.float32, 1),
    ("octave", np.int8, 1),
    ("descriptors", np.uint8, DESCRIPTOR_BYTES),
)


class SpilledSignatures(Mapping[int, Signature]):
    """A mapping from image key to ``Signature`` that lives in a temporary SQLite file."""

    def __init__(self) -> None:
        handle, name = tempfile.mkstemp(prefix="counterfake-pairs-", suffix=".sqlite")
        os.close(handle)
        self.path = Path(name)
        self._owner = os.getpid()
        self._connections: dict[int, sqlite3.Connection] = {}
        self._cache: OrderedDict[int, Signature] = OrderedDict()
        self._cache_pid = self._owner
        self._keys: set[int] = set()
        db = self._db()
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
        db.execute("CREATE TABLE signature (key INTEGER PRIMARY KEY, meta TEXT, data BLOB)")

    def _db(self) -> sqlite3.Connection:
        pid = os.getpid()
        if pid not in self._connections:
            self._connections[pid] = sqlite3.connect(self.path, isolation_level=None)
        return self._connections[pid]

    def __setitem__(self, key: int, signature: Signature) -> None:
        meta, data = _pack(signature)
        self._db().execute(
            "INSERT OR REPLACE INTO signature (key, meta, data) VALUES (?, ?, ?)", (key, meta, data)
        )
        self._keys.add(key)
        self._cache.pop(key, None)

    def __getitem__(self, key: int) -> Signature:
        if self._cache_pid != os.getpid():  # a forked worker starts with its own cache
            self._cache, self._cache_pid = OrderedDict(), os.getpid()
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        row = (
            self._db().execute("SELECT meta, data FROM signature WHERE key = ?", (key,)).fetchone()
        )
        if row is None:
            raise KeyError(key)
        signature = _unpack(*row)
        self._cache[key] = signature
        if len(self._cache) > CACHED:
            self._cache.popitem(last=False)
        return signature

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[int]:
        return iter(self._keys)

    def close(self) -> None:
        """Close this process's connection and, in the process that made it, delete the file."""
        connection = self._connections.pop(os.getpid(), None)
        if connection is not None:
            connection.close()
        if os.getpid() == self._owner:
            self.path.unlink(missing_ok=True)


def _pack(signature: Signature) -> tuple[str, bytes]:
    meta = [
        signature.label,
        signature.sha256,
        signature.width,
        signature.height,
        signature.frame_width,
        signature.frame_height,
        len(signature.features),
        len(signature.mirrored),
        list(signature.grid.shape),
    ]
    parts = [signature.grid] + [
        getattr(features, name)
        for features in (signature.features, signature.mirrored)
        for name, _, _ in _FIELDS
    ]
    return json.dumps(meta), b"".join(np.ascontiguousarray(p).tobytes() for p in parts)


def _unpack(meta: str, data: bytes) -> Signature:
    label, sha256, width, height, frame_width, frame_height, n, n_mirrored, grid_shape = json.loads(
        meta
    )
    offset = 0

    def take(dtype: type, shape: tuple[int, ...]) -> np.ndarray:
        nonlocal offset
        count = int(np.prod(shape))
        array = np.frombuffer(data, dtype, count, offset).reshape(shape)
        offset += array.nbytes
        return array

    grid = take(np.uint8, tuple(grid_shape))
    sides = [
        LocalFeatures(
            **{
                name: take(dtype, (count, per) if per > 1 else (count,))
                for name, dtype, per in _FIELDS
            }
        )
        for count in (n, n_mirrored)
    ]
    return Signature(
        label=label,
        sha256=sha256,
        width=width,
        height=height,
        frame_width=frame_width,
        frame_height=frame_height,
        pdq={},
        features=sides[0],
        mirrored=sides[1],
        grid=grid,
        face=np.zeros(0, np.int32),
    )
