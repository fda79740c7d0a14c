"""What a reader needs first: counts, the people affected, and when each photo first appeared.

Works on scan results as dictionaries (``FileResult.to_json()``, plus the optional ``context``
that Telegram exports add), so the HTML report, the CSV and the evidence agree on the numbers.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

TELEGRAM_DATE = "Telegram message date"
FILE_MODIFIED = "file modified (UTC)"
SCAN_TIME = "scan time (UTC)"


@dataclass(frozen=True)
class Appearance:
    """When a file was first seen, and where that date comes from."""

    when: str  # "YYYY-MM-DD HH:MM", sortable as text
    source: str  # TELEGRAM_DATE, FILE_MODIFIED or SCAN_TIME

    @property
    def day(self) -> str:
        return self.when[:10]


@dataclass
class Summary:
    files: int = 0
    errors: int = 0
    matched_files: int = 0
    kinds: Counter = field(default_factory=Counter)
    people: list[str] = field(default_factory=list)  # distinct subjects, sorted
    photos: int = 0  # distinct registered photos found
    timeline: list[dict[str, Any]] = field(default_factory=list)  # first appearance per photo
    date_sources: list[str] = field(default_factory=list)

    @property
    def matches(self) -> int:
        return sum(self.kinds.values())


def appearance(path: str, context: dict[str, Any] | None, scanned_at: datetime) -> Appearance:
    """The message date for a Telegram file, else the file's modification time, else the scan."""
    date = (context or {}).get("date")
    if isinstance(date, str):
        try:
            parsed = datetime.fromisoformat(date)
        except ValueError:
            parsed = None
        if parsed is not None:
            return Appearance(parsed.strftime("%Y-%m-%d %H:%M"), TELEGRAM_DATE)
    try:
        modified = datetime.fromtimestamp(os.stat(path).st_mtime, UTC)
    except (OSError, ValueError):
        return Appearance(scanned_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M"), SCAN_TIME)
    return Appearance(modified.strftime("%Y-%m-%d %H:%M"), FILE_MODIFIED)


def summarise(results: list[dict[str, Any]], scanned_at: datetime) -> Summary:
    summary = Summary(files=len(results))
    first: dict[tuple[str, str], dict[str, Any]] = {}
    for result in results:
        if result.get("error"):
            summary.errors += 1
        matches = result.get("matches") or []
        if not matches:
            continue
        summary.matched_files += 1
        seen = appearance(result["path"], result.get("context"), scanned_at)
        for match in matches:
            summary.kinds[match["kind"]] += 1
            key = (match["subject"], match["photo"])
            entry = {
                "when": seen.when,
                "day": seen.day,
                "source": seen.source,
                "subject": match["subject"],
                "photo": match["photo"],
                "kind": match["kind"],
                "path": result["path"],
            }
            if key not in first or entry["when"] < first[key]["when"]:
                first[key] = entry
    summary.people = sorted({subject for subject, _ in first})
    summary.photos = len(first)
    summary.timeline = group_by_day(first.values())
    summary.date_sources = sorted({entry["source"] for entry in first.values()})
    return summary


def group_by_day(entries) -> list[dict[str, Any]]:
    """[{"day": "YYYY-MM-DD", "entries": [...]}], oldest first."""
    days: dict[str, list[dict[str, Any]]] = {}
    for entry in sorted(entries, key=lambda e: (e["when"], e.get("path", ""))):
        days.setdefault(entry["day"], []).append(entry)
    return [{"day": day, "entries": items} for day, items in days.items()]
