"""The PDQ index: exact Hamming-distance lookup of PDQ hashes up to Meta's match threshold,
for the hash exchange (exchange.py) and the shared index entries (index/owners.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterable

import numpy as np

from counterfake.signature.pdq import MATCH_THRESHOLD

_HASH_BYTES = 32

# Multi-index hashing: the 256 bits are cut into 16 substrings of 16 bits, and each substring
# of the query is looked up exactly and with each one of its bits flipped. Two hashes within 31
# bits of each other differ in at most one bit of at least one substring (otherwise they would
# differ in 2 x 16 = 32 bits or more), so every hash within Meta's threshold is found: the index
# is exact up to distance 31, and compares only a few thousand candidates per lookup at 1M.
#
# faiss's IndexBinaryMultiHash does the same, but at 1M hashes it builds about twice as slowly
# and answers about ten times more slowly than the sorted numpy tables below, which answer in
# under a millisecond (bench/exchange_speed.py; the figures are in docs/exchange.md).
_TABLES = 16
_PROBES = np.array([0] + [1 << bit for bit in range(16)], np.uint16)  # exact, then 1 bit flipped
_MIN_MERGE = 4096  # hashes added since the last build are compared one by one until then...
_MERGE_SHARE = 8  # ...or until they are an eighth of the built part


class PdqIndex:
    """Fast Hamming-distance lookup over many PDQ hashes; safe to share between threads.

    The built part is a multi-index (see above); hashes added since it was built are compared
    directly, and are merged in once there are many. A removed key stops being answered at once;
    its row is reclaimed at the next build.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._codes = np.zeros((0, _HASH_BYTES), np.uint8)
        self._size = 0  # rows of _codes in use
        self._keys: list[str | None] = []  # row -> key, None once removed
        self._rows: dict[str, int] = {}
        self._built = 0  # rows [0, _built) are in the tables
        self._order = np.zeros((_TABLES, 0), np.int32)  # per table: rows by substring value
        self._starts = np.zeros((_TABLES, (1 << 16) + 1), np.int64)  # where each value begins

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, key: str) -> bool:
        return key in self._rows

    def add(self, key: str, hash_hex: str) -> None:
        """Add (or replace) the hash under ``key``."""
        self.add_many([(key, hash_hex)])

    def add_many(self, items: Iterable[tuple[str, str]]) -> None:
        """Add (or replace) many (key, hex) pairs at once: how a worker loads a registry."""
        pairs = list(items)
        codes = np.frombuffer(b"".join(_code(hex_) for _, hex_ in pairs), np.uint8)
        codes = codes.reshape(-1, _HASH_BYTES)
        with self._lock:
            self._reserve(self._size + len(pairs))
            for (key, _), code in zip(pairs, codes, strict=True):
                if key in self._rows:
                    self._keys[self._rows[key]] = None
                self._codes[self._size] = code
                self._rows[key] = self._size
                self._keys.append(key)
                self._size += 1
            if self._size - self._built > max(_MIN_MERGE, self._built // _MERGE_SHARE):
                self._build()

    def items(self) -> list[tuple[str, str]]:
        """Every (key, hex) answered now, as ``add_many`` takes them."""
        with self._lock:
            return [(key, self._codes[row].tobytes().hex()) for key, row in self._rows.items()]

    def remove(self, key: str) -> None:
        """Stop answering with ``key``; an unknown key is ignored."""
        with self._lock:
            row = self._rows.pop(key, None)
            if row is not None:
                self._keys[row] = None

    def lookup(self, hash_hex: str, max_distance: int = MATCH_THRESHOLD) -> list[tuple[str, int]]:
        """(key, distance) of every hash within ``max_distance`` bits, nearest first.

        Exact: up to distance 31 through the multi-index, beyond it by comparing every hash.
        """
        query = np.frombuffer(_code(hash_hex), np.uint8)
        with self._lock:
            if max_distance > MATCH_THRESHOLD:
                rows = np.arange(self._size)
            else:
                rows = np.concatenate([self._candidates(query), np.arange(self._built, self._size)])
            codes = self._codes[rows].view(np.uint64)
            distances = np.bitwise_count(codes ^ query.view(np.uint64)).sum(axis=1)
            near = distances <= max_distance
            # A row found through several substrings is a candidate several times: count it once.
            answers = {
                (key, distance)
                for row, distance in zip(rows[near].tolist(), distances[near].tolist(), strict=True)
                if (key := self._keys[row]) is not None
            }
        return sorted(answers, key=lambda answer: (answer[1], answer[0]))

    def _candidates(self, query: np.ndarray) -> np.ndarray:
        """Rows of the built part sharing a substring with the query, up to one bit."""
        if not self._built:
            return np.zeros(0, np.int64)
        probes = (query.view(np.uint16)[:, None] ^ _PROBES[None, :]).astype(np.int64)
        tables = np.arange(_TABLES)[:, None]
        starts = self._starts[tables, probes].ravel()
        lengths = self._starts[tables, probes + 1].ravel() - starts
        # Every position in every probed bucket, as one index into the tables laid end to end.
        starts += np.repeat(np.arange(_TABLES) * self._built, _PROBES.size)
        ends = np.cumsum(lengths)
        positions = np.arange(ends[-1]) + np.repeat(starts - (ends - lengths), lengths)
        return self._order.ravel()[positions]

    def _reserve(self, rows: int) -> None:
        if rows > len(self._codes):
            grown = np.zeros((max(rows, 2 * len(self._codes), 1024), _HASH_BYTES), np.uint8)
            grown[: self._size] = self._codes[: self._size]
            self._codes = grown

    def _build(self) -> None:
        """Rebuild the tables over every live row, dropping removed ones."""
        live = [row for row, key in enumerate(self._keys) if key is not None]
        codes = self._codes[live]
        self._keys = [self._keys[row] for row in live]
        self._rows = {key: row for row, key in enumerate(self._keys)}
        self._codes = np.zeros((len(live) + max(1024, len(live) // 8), _HASH_BYTES), np.uint8)
        self._codes[: len(live)] = codes  # with room, so the next additions need no copy
        self._size = self._built = len(live)
        substrings = codes.view(np.uint16)
        self._order = np.empty((_TABLES, len(live)), np.int32)
        self._starts = np.zeros((_TABLES, (1 << 16) + 1), np.int64)
        for table in range(_TABLES):
            values = substrings[:, table]
            self._order[table] = np.argsort(values, kind="stable")
            self._starts[table, 1:] = np.cumsum(np.bincount(values, minlength=1 << 16))


def _code(hash_hex: str) -> bytes:
    """The hash's 32 bytes in a fixed order (Hamming distance does not care which)."""
    try:
        code = bytes.fromhex(hash_hex) if len(hash_hex) == 2 * _HASH_BYTES else b""
    except ValueError:
        code = b""
    if len(code) != _HASH_BYTES:
        raise ValueError(f"a PDQ hash is 64 hexadecimal digits, not {hash_hex[:80]!r}")
    return code
