"""Scan results as a CSV for spreadsheets: one row per match, and one row per unreadable file.

Encoding: UTF-8 **with** a byte-order mark. Excel opens a CSV without one in the machine's legacy
code page, which garbles the Cyrillic, Arabic or emoji that chat names and file names often hold;
LibreOffice, Google Sheets, pandas and Python's ``utf-8-sig`` all read the mark and drop it.

Cells are protected against formula injection (a file or chat named ``=HYPERLINK(...)`` must not
become a live formula): any text starting with ``= + - @``, a tab or a carriage return gets a
leading apostrophe, which spreadsheets display as text. Numbers are written as numbers.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence
from typing import Any

from counterfake.atomic import atomic_writer
from counterfake.results import FileResult, Finding, PairsDocument, TimeRange

COLUMNS = (
    "path",
    "sha256",
    "error",
    "photo",
    "subject",
    "kind",
    "score",
    "nfa",
    "altered_fraction",
    "mask",
    "chat",
    "message_id",
    "date",
    "from",
    "frame_time",
    "segments",
)
PAIR_COLUMNS = ("source", "derivative", "kind", "score", "altered_fraction", "mask", "cluster")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """The value as a spreadsheet will show it, never as a formula it would run."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def rows(results: Iterable[FileResult]) -> Iterable[dict[str, Any]]:
    """The rows for scan results: one per finding, and one per unreadable file."""
    for file_result in results:
        result = file_result.to_json()
        context = result.get("context") or {}
        where = {
            "path": result["path"],
            "sha256": result.get("sha256"),
            "chat": (context.get("chat") or {}).get("name"),
            "message_id": context.get("message_id"),
            "date": context.get("date"),
            "from": context.get("from"),
        }
        if result.get("error"):
            yield {**where, "error": result["error"]}
        for typed, match in zip(file_result.matches, result.get("matches") or [], strict=True):
            row = {key: match.get(key) for key in COLUMNS if key in match}
            if isinstance(typed, Finding) and typed.segments is not None:
                row["segments"] = segments_text(typed.segments)
            yield {**where, **row}


def segments_text(segments: Sequence[TimeRange]) -> str:
    """A video match's segments as one cell: ``2.0-7.0>1.5-6.5; ...`` (scanned seconds, then
    the registered video's after ``>``, when it is a video)."""
    parts = []
    for part in segments:
        text = "{:.2f}-{:.2f}".format(*part.scan)
        if part.registered is not None:
            text += ">{:.2f}-{:.2f}".format(*part.registered)
        parts.append(text)
    return "; ".join(parts)


def write_csv(path: str | os.PathLike, results: Iterable[FileResult]) -> None:
    """Write the scan CSV atomically (a reader never sees half a file)."""
    _write(path, COLUMNS, rows(results))


def write_pairs_csv(path: str | os.PathLike, doc: PairsDocument) -> None:
    """Write the pairs of ``counterfake pairs``, one row per pair, atomically."""
    cluster_of = {member: cluster.id for cluster in doc.clusters for member in cluster.members}
    pairs = ({**pair.to_json(), "cluster": cluster_of.get(pair.derivative)} for pair in doc.pairs)
    _write(path, PAIR_COLUMNS, pairs)


def _write(path: str | os.PathLike, columns: tuple[str, ...], items: Iterable[dict]) -> None:
    # a file name that is not UTF-8 (lone surrogates) is written as its escape, not refused
    with atomic_writer(path, encoding="utf-8-sig", errors="backslashreplace") as file:
        writer = csv.DictWriter(file, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for item in items:
            writer.writerow({key: safe_cell(item.get(key)) for key in columns})
