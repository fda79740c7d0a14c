"""vPDQ exchange in ThreatExchange's format: the CSV python-threatexchange's ``dataset --csv``
prints (``signal_type,signal_str,collab,category,tags``), a row per video whose signal type is
``vpdq`` and whose signal is the JSON list of ``hash,quality,timestamp`` (video/vpdq.py).

Rows of other signal types (``pdq``, ``md5``...) are passed over: one file can carry them all,
and the photo exchange (exchange.py) reads the ``pdq`` rows of the same file.

Imported signals are looked up by a scan (:class:`VpdqBank`) with Meta's decision: a scanned
video matches an imported one when QUERY_MATCH_PERCENT of its good frames (quality at least
QUALITY_THRESHOLD, each distinct hash once) lie within DISTANCE_THRESHOLD bits of one of the
imported video's good frames, exactly as ``vpdq.match_percent`` counts them.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np

from counterfake.exchange import THREATEXCHANGE_HEADER, ExchangeFormatError
from counterfake.video.vpdq import (
    DISTANCE_THRESHOLD,
    QUALITY_THRESHOLD,
    QUERY_MATCH_PERCENT,
    SECONDS_PER_HASH,
    VpdqFeature,
    features_from_json,
    features_to_json,
)

VPDQ_SIGNAL = "vpdq"  # python-threatexchange's name of the vPDQ signal type
_MAX_FILE = 512 * 1024 * 1024


@dataclass(frozen=True)
class VpdqRecord:
    """One video's vPDQ as exchanged, with the sharer's reference (its ``collab`` cell)."""

    features: tuple[VpdqFeature, ...]
    ref: str | None = None

    @property
    def signal(self) -> str:
        return features_to_json(self.features)

    @property
    def digest(self) -> str:
        """What names the signal when it is stored (a signal can be tens of kilobytes)."""
        return hashlib.sha256(self.signal.encode()).hexdigest()


def read_vpdq_records(path: str | Path) -> Iterator[VpdqRecord]:
    """The vPDQ rows of a ThreatExchange CSV; ExchangeFormatError naming the line otherwise."""
    name = str(path)
    try:
        if Path(path).stat().st_size > _MAX_FILE:
            raise ExchangeFormatError(f"{name}: larger than {_MAX_FILE // 2**20} MB")
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise ExchangeFormatError(f"{name}: cannot be read ({error})") from None
    rows = csv.reader(text.splitlines())
    try:
        header = next(rows, None)
        if header is None or [cell.strip() for cell in header] != THREATEXCHANGE_HEADER:
            expected = ",".join(THREATEXCHANGE_HEADER)
            raise ExchangeFormatError(f"{name}: line 1: not a ThreatExchange CSV ({expected})")
        for number, cells in enumerate(rows, 2):
            if not cells:
                continue
            if len(cells) != len(THREATEXCHANGE_HEADER):
                raise ExchangeFormatError(f"{name}: line {number}: {len(cells)} fields; expected 5")
            if cells[0].strip() != VPDQ_SIGNAL:
                continue
            try:
                features = features_from_json(cells[1])
            except ValueError as error:
                raise ExchangeFormatError(f"{name}: line {number}: {error}") from None
            yield VpdqRecord(tuple(features), cells[2] or None)
    except csv.Error as error:
        raise ExchangeFormatError(f"{name}: not valid CSV ({error})") from None


def write_vpdq_records(records: Iterable[VpdqRecord], out: TextIO) -> int:
    """Write vPDQ rows of a ThreatExchange CSV; return how many."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(THREATEXCHANGE_HEADER)
    count = 0
    for record in records:
        writer.writerow([VPDQ_SIGNAL, record.signal, record.ref or "", "", ""])
        count += 1
    return count


@dataclass(frozen=True)
class ImportedVpdq:
    """An imported signal as a scan holds it: its row, sharer and reference, and its good
    frames' distinct hashes (n x 32 bytes)."""

    row_id: int
    source: str
    ref: str | None
    hashes: np.ndarray = field(repr=False)

    @property
    def name(self) -> str:
        """How a match names it: the sharer and its reference (or the row, without one)."""
        return f"{self.source}: {self.ref or f'imported vPDQ {self.row_id}'}"


@dataclass(frozen=True)
class VpdqHit:
    """An imported signal a scanned video matches: the share of its good frames found in the
    signal (``score``, 0..1), and where they are (``scan``: from the first to a hash interval
    past the last, within the video)."""

    record: ImportedVpdq
    score: float
    scan: tuple[float, float]


_POPCOUNT = np.array([bin(n).count("1") for n in range(256)], np.uint8)


class VpdqBank:
    """Every imported vPDQ signal of a registry, held for lookups (see the module's
    description); rows whose signal no longer reads are left out (an import checks them)."""

    def __init__(self, rows: Iterable[tuple[int, str, str, str | None]]) -> None:
        self.records: list[ImportedVpdq] = []
        for row_id, source, signal, ref in rows:
            try:
                features = features_from_json(signal)
            except ValueError:
                continue
            hashes, _ = _good(features)
            if len(hashes):
                self.records.append(ImportedVpdq(row_id, source, ref, hashes))

    def __len__(self) -> int:
        return len(self.records)

    def lookup(self, query: Sequence[VpdqFeature], duration: float | None) -> list[VpdqHit]:
        """The imported signals a scanned video's vPDQ matches by Meta's decision
        (``duration``: the video's, when known)."""
        hashes, times = _good(query)
        if not len(hashes):
            return []
        hits = []
        for record in self.records:
            distance = _POPCOUNT[hashes[:, None, :] ^ record.hashes[None, :, :]].sum(axis=2)
            found = distance.min(axis=1) <= DISTANCE_THRESHOLD
            percent = 100.0 * float(found.mean())
            if percent >= QUERY_MATCH_PERCENT:
                seen = [t for hit, held in zip(found, times, strict=True) if hit for t in held]
                end = max(seen) + SECONDS_PER_HASH
                end = end if duration is None else max(min(end, duration), max(seen))
                hits.append(VpdqHit(record, percent / 100, (min(seen), end)))
        return hits


def _good(features: Iterable[VpdqFeature]) -> tuple[np.ndarray, list[list[float]]]:
    """The distinct hashes of good frames (n x 32 uint8), and the times each was seen at."""
    seen: dict[bytes, list[float]] = {}
    for feature in features:
        if feature.quality >= QUALITY_THRESHOLD:
            seen.setdefault(feature.hash.bits, []).append(feature.timestamp)
    hashes = np.frombuffer(b"".join(seen), np.uint8).reshape(len(seen), 32)
    return hashes, list(seen.values())
