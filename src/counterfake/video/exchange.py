"""vPDQ exchange in ThreatExchange's format: the CSV python-threatexchange's ``dataset --csv``
prints (``signal_type,signal_str,collab,category,tags``), a row per video whose signal type is
``vpdq`` and whose signal is the JSON list of ``hash,quality,timestamp`` (video/vpdq.py).

Rows of other signal types (``pdq``, ``md5``...) are passed over: one file can carry them all,
and the photo exchange (exchange.py) reads the ``pdq`` rows of the same file.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from counterfake.exchange import THREATEXCHANGE_HEADER, ExchangeFormatError
from counterfake.video.vpdq import VpdqFeature, features_from_json, features_to_json

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
