"""PDQ hash exchange: read and write the files of hash-sharing programmes, and look hashes up.

counterfake's own matching uses local features, but the programmes that platforms already run
(StopNCII, Meta's ThreatExchange and Hasher-Matcher-Actioner) share PDQ hashes. This module lets
counterfake sit beside them: it exports the registry's PDQ hashes in their formats, imports
theirs, and answers "is this PDQ hash near one we hold?" quickly. The formats, and where each
one comes from, are described in docs/exchange.md:

- ``stopncii``: the JSON of StopNCII's hash API (``hashRecords`` with ``signalType``
  ``ImagePDQ``, ``hashValue``, ``hashStatus``, ``caseNumbers``).
- ``threatexchange``: the CSV that python-threatexchange's ``dataset --csv`` prints
  (``signal_type,signal_str,collab,category,tags``).
- ``hma``: the CSV of the ThreatExchange data files HMA and python-threatexchange keep per
  signal type (``simple.HASH_PDQ.te``: hash, indicator id, descriptor id, added on, labels).
- ``pdq``: what Meta's ``pdq-photo-hasher`` prints, ``hash,quality,filename`` (or bare hashes, or
  its ``hash=...,quality=...,filename=...`` detailed form).

Only ``pdq`` and counterfake's own StopNCII export carry the quality; a hash read from the other
formats has ``quality=None`` (unknown: the sharer vetted it).
"""

from __future__ import annotations

import csv
import json
import os
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, NamedTuple, TextIO

import numpy as np

from counterfake.signature.pdq import MATCH_THRESHOLD, PdqHash

FORMATS = ("stopncii", "threatexchange", "hma", "pdq")
THREATEXCHANGE_HEADER = ["signal_type", "signal_str", "collab", "category", "tags"]
_THREATEXCHANGE_PDQ = "pdq"  # python-threatexchange's name of the PDQ signal type
_STOPNCII_PDQ = "ImagePDQ"
_STOPNCII_LIVE = {"Received", "Active"}
_STOPNCII_GONE = {"Withdrawn", "Deleted"}  # "should be deleted by client", says their API
_HMA_LABEL = "counterfake"
_HASH_BYTES = 32
_HEX64 = re.compile("[0-9a-fA-F]{64}")


class ExchangeFormatError(ValueError):
    """A hash file cannot be read; the message names the file, the line and the problem."""


@dataclass(frozen=True)
class PdqRecord:
    """One PDQ hash as exchanged: 64 hex digits, the quality (0..100, or None when the format
    does not carry it), and an optional reference (the sharer's id for it, or a file name).

    ``withdrawn`` marks a hash its sharer has withdrawn (a StopNCII record whose status is
    Withdrawn or Deleted): storing it deletes the copy imported earlier instead. ``bank``
    names the bank an exported hash comes from (HMA's label column; ``counterfake`` if None).
    """

    hash_hex: str
    quality: int | None
    ref: str | None = None
    withdrawn: bool = False
    bank: str | None = None  # where it is held, written as the HMA row's label

    def __post_init__(self) -> None:
        PdqHash.from_hex(self.hash_hex, 100 if self.quality is None else self.quality)
        object.__setattr__(self, "hash_hex", self.hash_hex.strip().lower())


def check_bank_name(source: str) -> str:
    """An import's source names its bank: ``counterfake`` is the bank of registered photos and
    cannot be imported into (ExchangeFormatError)."""
    if source.strip().lower() == _HMA_LABEL:
        raise ExchangeFormatError(
            f"source {source!r} is reserved for the registered photos; name the list's sharer"
        )
    return source


# ---- reading -------------------------------------------------------------------------------


def read_pdq_records(
    source: str | os.PathLike | TextIO, name: str | None = None
) -> Iterator[PdqRecord]:
    """The PDQ hashes in a file, its format detected.

    ``source`` is a path, an open text stream, or the text itself (a ``str`` holding a line
    break, as an uploaded file's body does; ``name`` then says what to call it in errors).
    Raises :class:`ExchangeFormatError` naming the file and line at the first malformed entry,
    before anything after it is yielded. Entries of other signal types (video hashes, URLs in a
    ThreatExchange CSV) are passed over; withdrawn StopNCII records come marked ``withdrawn``.
    """
    if isinstance(source, str) and "\n" in source:
        yield from read_pdq_text(source, name or "<text>")
        return
    if isinstance(source, str | os.PathLike):
        name = name or os.fspath(source)
        try:
            text = Path(source).read_text(encoding="utf-8-sig")
        except UnicodeDecodeError:
            raise ExchangeFormatError(f"{name}: not a text file (not UTF-8)") from None
        except OSError as error:
            raise ExchangeFormatError(f"{name}: cannot be read ({error.strerror})") from None
    else:
        name = name or str(getattr(source, "name", "<stream>"))
        text = source.read()
    yield from read_pdq_text(text, name or "<stream>")


def read_pdq_text(text: str, name: str) -> Iterator[PdqRecord]:
    """As :func:`read_pdq_records`, from text already read."""
    text = text.lstrip("\ufeff")
    stripped = text.lstrip()
    if not stripped:
        return
    if stripped[0] in "{[":
        yield from _read_stopncii(text, name)
        return
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.strip())
    header = [cell.strip() for cell in next(csv.reader([lines[first]]))]
    if header == THREATEXCHANGE_HEADER:
        yield from _read_threatexchange(lines, first + 1, name)
    elif len(header) == 5 and header[2].strip().lstrip("-").isdigit():
        yield from _read_hma(lines, name)
    else:
        yield from _read_pdq_lines(lines, name)


def _error(name: str, line: int, problem: str) -> ExchangeFormatError:
    return ExchangeFormatError(f"{name}: line {line}: {problem}")


def _record(hash_hex: str, quality: int | None, ref: str | None, where: str) -> PdqRecord:
    hash_hex = hash_hex.strip()
    if not _HEX64.fullmatch(hash_hex):
        raise ExchangeFormatError(f"{where}: {hash_hex[:80]!r} is not a PDQ hash (64 hex digits)")
    if quality is not None and not 0 <= quality <= 100:
        raise ExchangeFormatError(f"{where}: quality {quality} is not in 0..100")
    return PdqRecord(hash_hex, quality, ref or None)


def _quality(text: str, where: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ExchangeFormatError(
            f"{where}: quality {text.strip()[:40]!r} is not a whole number"
        ) from None


def _csv_rows(lines: list[str], start: int, name: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) of each non-blank line from ``start`` (0-based)."""
    for index in range(start, len(lines)):
        if not lines[index].strip():
            continue
        try:
            [cells] = list(csv.reader([lines[index]], strict=True))
        except (csv.Error, ValueError) as error:
            raise _error(name, index + 1, f"not a CSV row ({error})") from None
        yield index + 1, cells


def _read_pdq_lines(lines: list[str], name: str) -> Iterator[PdqRecord]:
    for number, cells in _csv_rows(lines, 0, name):
        where = f"{name}: line {number}"
        if cells[0].startswith("hash="):
            fields = dict(cell.partition("=")[::2] for cell in cells)
            if "quality" not in fields:
                raise _error(name, number, "a 'hash=' line without 'quality='")
            yield _record(
                fields["hash"], _quality(fields["quality"], where), fields.get("filename"), where
            )
            continue
        if len(cells) > 3:
            raise _error(name, number, f"{len(cells)} fields; expected hash[,quality[,name]]")
        quality = _quality(cells[1], where) if len(cells) > 1 else None
        yield _record(cells[0], quality, cells[2] if len(cells) > 2 else None, where)


def _read_hma(lines: list[str], name: str) -> Iterator[PdqRecord]:
    for number, cells in _csv_rows(lines, 0, name):
        where = f"{name}: line {number}"
        if len(cells) != 5:
            raise _error(
                name,
                number,
                f"{len(cells)} fields; expected hash,indicator_id,descriptor_id,added_on,labels",
            )
        if not cells[2].strip().lstrip("-").isdigit():
            raise _error(name, number, f"descriptor id {cells[2][:40]!r} is not a number")
        yield _record(cells[0], None, cells[1], where)


def _read_threatexchange(lines: list[str], start: int, name: str) -> Iterator[PdqRecord]:
    for number, cells in _csv_rows(lines, start, name):
        where = f"{name}: line {number}"
        if len(cells) != len(THREATEXCHANGE_HEADER):
            raise _error(name, number, f"{len(cells)} fields; the header names 5")
        signal_type, signal, collab = cells[0].strip(), cells[1], cells[2]
        if signal_type == _THREATEXCHANGE_PDQ:
            yield _record(signal, None, collab, where)
        elif not signal_type:
            raise _error(name, number, "no signal_type")


def _read_stopncii(text: str, name: str) -> Iterator[PdqRecord]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise _error(name, error.lineno, f"not valid JSON ({error.msg})") from None
    except RecursionError:
        raise ExchangeFormatError(f"{name}: not a hash list (JSON nested too deeply)") from None
    records = document.get("hashRecords") if isinstance(document, dict) else document
    if not isinstance(records, list):
        raise ExchangeFormatError(f"{name}: no 'hashRecords' list (not a StopNCII hash file)")
    for index, record in enumerate(records):
        where = f"{name}: hashRecords[{index}]"
        if not isinstance(record, dict):
            raise ExchangeFormatError(f"{where}: a record must be a JSON object")
        for field in ("signalType", "hashValue"):
            if not isinstance(record.get(field), str):
                raise ExchangeFormatError(f"{where}: '{field}' is missing or not a string")
        if record["signalType"] != _STOPNCII_PDQ:
            continue
        status = record.get("hashStatus", "Active")
        if status not in _STOPNCII_LIVE | _STOPNCII_GONE:
            raise ExchangeFormatError(f"{where}: unknown hashStatus {str(status)[:40]!r}")
        quality = record.get("quality")
        if quality is not None and (isinstance(quality, bool) or not isinstance(quality, int)):
            raise ExchangeFormatError(f"{where}: 'quality' must be a whole number")
        cases = record.get("caseNumbers") or {}
        if not isinstance(cases, dict):
            raise ExchangeFormatError(f"{where}: 'caseNumbers' must be an object")
        found = _record(record["hashValue"], quality, ",".join(sorted(cases)) or None, where)
        yield replace(found, withdrawn=status in _STOPNCII_GONE)


# ---- writing -------------------------------------------------------------------------------


def write_pdq_records(records: Iterable[PdqRecord], out: TextIO, format: str) -> int:
    """Write records in one of :data:`FORMATS`; return how many were written."""
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}: choose one of {', '.join(FORMATS)}")
    records = [record for record in records if not record.withdrawn]
    if format == "stopncii":
        _write_stopncii(records, out)
        return len(records)
    writer = csv.writer(out, lineterminator="\n")
    if format == "threatexchange":
        writer.writerow(THREATEXCHANGE_HEADER)
    for number, record in enumerate(records, 1):
        if format == "threatexchange":
            writer.writerow([_THREATEXCHANGE_PDQ, record.hash_hex, record.ref or "", "", ""])
        elif format == "hma":
            today = datetime.now(UTC).date().isoformat()
            label = record.bank or _HMA_LABEL
            writer.writerow([record.hash_hex, record.ref or number, number, today, label])
        else:
            quality = "" if record.quality is None else record.quality
            writer.writerow([record.hash_hex, quality, record.ref or ""])
    return len(records)


def _write_stopncii(records: list[PdqRecord], out: TextIO) -> None:
    now = int(datetime.now(UTC).timestamp())
    entries: list[dict[str, Any]] = []
    for record in records:
        entry: dict[str, Any] = {
            "lastModtimestamp": now,
            "signalType": _STOPNCII_PDQ,
            "hashValue": record.hash_hex,
            "hashStatus": "Active",
            "caseNumbers": {record.ref: "Active"} if record.ref else {},
            "CSPFeedbacks": [],
        }
        if record.quality is not None:
            entry["quality"] = record.quality  # counterfake's addition; other readers skip it
        entries.append(entry)
    document = {
        "count": len(entries),
        "nextPageToken": None,
        "nextSetTimestamp": now,
        "hasMoreRecords": False,
        "hashRecords": entries,
    }
    json.dump(document, out, indent=1)
    out.write("\n")


# ---- lookup --------------------------------------------------------------------------------

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


class PdqRow(NamedTuple):
    """One PDQ hash the registry holds: a registered photo's (``ref`` is its photo id) or an
    imported one's (``ref`` is its imported row's id; ``quality`` None when its format did not
    carry one)."""

    kind: Literal["photo", "imported"]
    ref: str
    quality: int | None
    hex_hash: str


@dataclass(frozen=True)
class PdqMatch:
    kind: str  # "photo" (a registered photo) or "imported" (a hash from a sharing programme)
    ref: str  # the photo's id or the imported row's id
    distance: int


def index_pdq_hashes(rows: Iterable[PdqRow]) -> PdqIndex:
    """An index over ``Registry.pdq_hashes(dihedral=True)`` rows; see :func:`lookup_pdq`.

    A photo gives eight rows (its orientations); each gets a key of its own, and
    :func:`lookup_pdq` folds them back into one answer per photo.
    """
    index = PdqIndex()
    index.add_many(
        (f"{row.kind}:{row.ref}:{number}", row.hex_hash) for number, row in enumerate(rows)
    )
    return index


def lookup_pdq(
    index: PdqIndex, hash_hex: str, max_distance: int = MATCH_THRESHOLD
) -> list[PdqMatch]:
    """What an index built by :func:`index_pdq_hashes` holds near a hash: one answer per photo
    or imported hash, at its nearest orientation, nearest first."""
    nearest: dict[tuple[str, str], int] = {}
    for key, distance in index.lookup(hash_hex, max_distance):
        kind, ref, _ = key.split(":")
        nearest.setdefault((kind, ref), distance)
    return [PdqMatch(kind, ref, distance) for (kind, ref), distance in nearest.items()]


def _code(hash_hex: str) -> bytes:
    """The hash's 32 bytes in a fixed order (Hamming distance does not care which)."""
    try:
        code = bytes.fromhex(hash_hex) if len(hash_hex) == 2 * _HASH_BYTES else b""
    except ValueError:
        code = b""
    if len(code) != _HASH_BYTES:
        raise ValueError(f"a PDQ hash is 64 hexadecimal digits, not {hash_hex[:80]!r}")
    return code
