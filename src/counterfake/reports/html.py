"""The self-contained HTML report: one file a non-technical reader can open anywhere.

No scripts, no network: a Content-Security-Policy in the page forbids everything but inline
styles and embedded (data:) images, and every picture is a reduced JPEG embedded in the file.
Everything that comes from outside (file names, chat names, message texts) is escaped by Jinja2's
autoescaping, so a hostile file name is shown as text, never run.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from datetime import UTC, datetime
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from counterfake import __version__
from counterfake.atomic import atomic_writer
from counterfake.imaging import DEFAULT_MAX_PIXELS
from counterfake.reports.summary import appearance, group_by_day, summarise
from counterfake.reports.thumbnails import (
    StripFrame,
    make_thumbnail,
    make_video_strip,
    strip_times,
)
from counterfake.results import FileResult, Finding, PairsDocument
from counterfake.text import printable

_MAX_TEXT = 2000  # characters of a message text shown on a card


def _visible(value: Any) -> Any:
    """Text as the page shows it (``text.printable``), line breaks and tabs of message texts
    kept; anything else as it is. Markup, the output of the templates' own macros, is safe."""
    if not isinstance(value, str) or isinstance(value, Markup):
        return value
    return printable(value, keep="\n\t")


def odds_text(nfa: float) -> str:
    """A match's number of false alarms as a reader takes it in: "about 1 in 10^12"."""
    if nfa <= 0.0:
        return "less than 1 in 10^300"
    if nfa >= 1.0:
        return f"about {nfa:.2g} (no match)"
    return f"about 1 in 10^{math.floor(-math.log10(nfa))}"


@cache
def _environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("counterfake.reports", "templates"),
        autoescape=True,  # the templates end in .j2, which select_autoescape would not cover
        undefined=StrictUndefined,
        finalize=_visible,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["odds"] = odds_text
    return environment


def write_report(
    path: str | os.PathLike,
    results: list[FileResult],
    *,
    scanned_at: datetime | None = None,
    interrupted: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> None:
    """Write the report of a scan, atomically.

    The scanned files and the match masks are read again here to make the thumbnails, so call
    this before temporary masks are deleted.
    """
    page = render_report(
        results,
        scanned_at=scanned_at,
        interrupted=interrupted,
        max_pixels=max_pixels,
    )
    with atomic_writer(path) as file:
        file.write(page)


def render_report(
    scan: list[FileResult],
    *,
    scanned_at: datetime | None = None,
    interrupted: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> str:
    """The page of a scan's report (see ``write_report``)."""
    results = [result.to_json() for result in scan]  # what the templates read
    scanned_at = scanned_at or datetime.now(UTC)
    cards = []
    for file_result, result in zip(scan, results, strict=True):
        for typed, match in zip(file_result.matches, result.get("matches") or [], strict=True):
            seen = appearance(result["path"], result.get("context"), scanned_at)
            video = typed if isinstance(typed, Finding) and typed.is_video else None
            cards.append(
                {
                    "path": result["path"],
                    "sha256": result.get("sha256"),
                    "image": None
                    if video is not None
                    else make_thumbnail(
                        result["path"], mask=match.get("mask"), max_pixels=max_pixels
                    ),
                    "strip": [] if video is None else _strip(result["path"], video, max_pixels),
                    "match": match,
                    "seen": seen,
                    "context": _context(result.get("context")),
                }
            )
    return (
        _environment()
        .get_template("scan.html.j2")
        .render(
            title="counterfake scan report",
            tool=f"counterfake {__version__}",
            generated=_utc_text(datetime.now(UTC)),
            scanned_at=_utc_text(scanned_at),
            interrupted=interrupted,
            summary=summarise(results, scanned_at),
            cards=cards,
            errors=[r for r in results if r.get("error")],
        )
    )


def _strip(path: str, match: Finding, max_pixels: int) -> list[StripFrame]:
    """A video match's strip of matched frames (see thumbnails.strip_times), the best frame's
    mask outlined."""
    return make_video_strip(
        path,
        strip_times(match),
        mask=match.mask,
        mask_time=match.frame_time,
        max_pixels=max_pixels,
    )


def write_pairs_report(
    path: str | os.PathLike, pairs_doc: PairsDocument, *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> None:
    """Write the report of ``counterfake pairs``, atomically."""
    page = render_pairs_report(pairs_doc, max_pixels=max_pixels)
    with atomic_writer(path) as file:
        file.write(page)


def render_pairs_report(pairs_doc: PairsDocument, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> str:
    """Clusters (one per original photo) with their derivatives; pairs outside any cluster last.

    Each derivative is shown with its altered region outlined beside the image it was made from.
    """
    doc = pairs_doc.to_json()  # what the templates read
    now = datetime.now(UTC)
    pairs = doc["pairs"]
    by_derivative: dict[str, list[dict[str, Any]]] = {}
    for pair in pairs:
        by_derivative.setdefault(pair["derivative"], []).append(pair)
    thumbnails: dict[tuple[str, str | None], Any] = {}

    def thumbnail(path: str, mask: str | None = None):
        if (path, mask) not in thumbnails:
            thumbnails[path, mask] = make_thumbnail(path, mask=mask, max_pixels=max_pixels)
        return thumbnails[path, mask]

    def card(pair: dict[str, Any]) -> dict[str, Any]:
        return {
            "pair": pair,
            "derivative": thumbnail(pair["derivative"], pair.get("mask")),
            "source": thumbnail(pair["source"]),
            "seen": appearance(pair["derivative"], None, now),
        }

    clusters, shown = [], set()
    for cluster in doc.get("clusters") or []:
        original = cluster.get("original")
        cards = []
        for member in cluster.get("members") or []:
            for pair in by_derivative.get(member, []):
                cards.append(card(pair))
                shown.add(id(pair))
        clusters.append(
            {
                "cluster": cluster,
                "original": thumbnail(original) if original else None,
                "cards": cards,
            }
        )
    loose = [card(p) for p in pairs if id(p) not in shown]
    timeline = _first_appearances(clusters)
    return (
        _environment()
        .get_template("pairs.html.j2")
        .render(
            title="counterfake pairs report",
            tool=f"counterfake {__version__}",
            generated=_utc_text(now),
            doc=doc,
            kinds=Counter(p.get("kind") for p in pairs),
            clusters=clusters,
            loose=loose,
            timeline=group_by_day(timeline),
            date_sources=sorted({t["source"] for t in timeline}),
            errors=[_error(e) for e in doc.get("errors") or []],
        )
    )


def _first_appearances(clusters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each cluster, its earliest derivative (by file date): when the fake first appeared."""
    entries = []
    for cluster in clusters:
        if not cluster["cards"]:
            continue
        first = min(cluster["cards"], key=lambda card: card["seen"].when)
        entries.append(
            {
                "when": first["seen"].when,
                "day": first["seen"].day,
                "source": first["seen"].source,
                "cluster": cluster["cluster"].get("id"),
                "original": cluster["cluster"].get("original"),
                "path": first["pair"]["derivative"],
            }
        )
    return entries


def _error(error: Any) -> dict[str, Any]:
    """Pairs errors may be one-line strings or {"path", "error"} objects."""
    if isinstance(error, dict):
        return {"path": error.get("path", ""), "error": error.get("error", "")}
    return {"path": "", "error": str(error)}


def _context(context: dict[str, Any] | None) -> dict[str, Any] | None:
    """The chat context of a Telegram file, flattened for display; None elsewhere."""
    if not context:
        return None
    chat = context.get("chat") or {}
    text = _plain_text(context.get("text"))
    return {
        "source": context.get("source"),
        "chat": chat.get("name"),
        "chat_type": chat.get("type"),
        "chat_id": chat.get("id"),
        "message_id": context.get("message_id"),
        "date": context.get("date"),
        "from": context.get("from"),
        "from_id": context.get("from_id"),
        "forwarded_from": context.get("forwarded_from"),
        "media": context.get("media") if isinstance(context.get("media"), str) else None,
        "text": text[:_MAX_TEXT] + ("…" if len(text) > _MAX_TEXT else ""),
    }


def _plain_text(text: Any) -> str:
    """Telegram writes a message text as a string or as a list of strings and entities."""
    if text is None:
        return ""
    if isinstance(text, str):
        return text
    if isinstance(text, list):
        return "".join(p if isinstance(p, str) else str(p.get("text", "")) for p in text)
    return str(text)


def _utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
