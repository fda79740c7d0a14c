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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, NamedTuple, TextIO

from counterfake.index.pdq import PdqIndex
from counterfake.signature.pdq import MATCH_THRESHOLD, PdqHash

FORMATS = ("stopncii", "threatexchange", "hma", "pdq")
THREATEXCHANGE_HEADER = ["signal_type", "signal_str", "collab", "category", "tags"]
_THREATEXCHANGE_PDQ = "pdq"  # python-threatexchange's name of the PDQ signal type
_STOPNCII_PDQ = "ImagePDQ"
_STOPNCII_LIVE = {"Received", "Active"}
_STOPNCII_GONE = {"Withdrawn", "Deleted"}  # "should be deleted by client", says their API
_HMA_LABEL = "counterfake"
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
