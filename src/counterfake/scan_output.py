"""What a scan writes and prints beside its results: the HTML report and the evidence, the
summary on the terminal, where masks go when only the report needs them, and the settings a
resumed scan must share with the one it resumes."""

from __future__ import annotations

import argparse
import tempfile
from datetime import datetime
from pathlib import Path

from counterfake.db import display_name
from counterfake.reports.evidence import write_evidence
from counterfake.reports.html import write_report
from counterfake.results import FileResult, Finding
from counterfake.scan import Scanner
from counterfake.sources.telegram import ExportSummary


def scratch_masks(args: argparse.Namespace) -> Path | None:
    """Where masks go when the report or the evidence needs them and the user asked for none.

    Beside the JSON when there is one, so that a resumed scan finds the masks of the results
    its journal holds; else a temporary folder. Removed when the scan is done.
    """
    if args.masks or not (args.report or args.evidence):
        return None
    if args.json:
        return Path(f"{args.json}.masks")
    return Path(tempfile.mkdtemp(prefix="counterfake-masks-"))


def scan_settings(args: argparse.Namespace, db: str) -> dict[str, object]:
    """What must be the same for a scan to resume another: inputs, registry, decoding, masks,
    and the candidate index when it is not the default (a journal of the default's scans,
    written before ``--index`` was offered, still resumes)."""
    return {
        "inputs": [str(Path(path).absolute()) for path in args.paths],
        "registry": display_name(db),
        "max_pixels": args.max_pixels,
        "masks": str(Path(args.masks).absolute()) if args.masks else None,
    } | ({"index": args.index} if args.index != "hash" else {})


def write_reports(
    args: argparse.Namespace,
    results: list[FileResult],
    scanner: Scanner,
    started: datetime,
    interrupted: bool,
) -> str | None:
    """The HTML report and the evidence; the hash of the evidence's last line, if written."""
    if args.report:
        write_report(
            args.report,
            results,
            scanned_at=started,
            interrupted=interrupted,
            max_pixels=args.max_pixels,
        )
    if not args.evidence:
        return None
    return write_evidence(
        args.evidence,
        results,
        registry=scanner.registry_path,
        started=started,
        thresholds=scanner.thresholds,
        settings={"paths": list(args.paths), "max_pixels": args.max_pixels, "index": args.index},
        interrupted=interrupted,
    )


def summarise(results: list[FileResult], interrupted: bool, exports: list[ExportSummary]) -> None:
    errors = sum(1 for r in results if r.error)
    kinds = [m.kind for r in results for m in r.matches]
    shown = kinds.count("contains_photo")
    print(
        f"scanned {len(results)} file(s): {kinds.count('manipulated')} manipulated, "
        f"{kinds.count('repost')} repost(s), "
        + (f"{shown} registered photo(s) shown in videos, " if shown else "")
        + f"{errors} unreadable"
        + (" (interrupted)" if interrupted else "")
    )
    for export in exports:
        counts = export.to_json()
        print(
            f"  telegram export {export.path}: {counts['chats']} chat(s), "
            f"{counts['messages']} message(s), {counts['images']} image(s), "
            f"{counts['not_included']} not included in the export, "
            f"{counts['refused_paths']} refused path(s)"
        )
    for result in results:
        for match in result.matches:
            if isinstance(match, Finding):
                print(
                    f"  {match.kind:<11} {result.path}  <-  {match.photo} ({match.subject}), "
                    f"score {match.score:.2f}, "
                    + (f"by {match.signal} alone, " if match.nfa is None else "")
                    + (f"nfa {match.nfa:.1e}, " if match.nfa is not None else "")
                    + f"altered {match.altered_fraction:.0%}"
                    + "".join(f", at {a:.1f}-{b:.1f} s" for a, b in _scan_ranges(match))
                )


def _scan_ranges(match: Finding) -> list[tuple[float, float]]:
    """Where a video match is in the scanned video (none for an image's match)."""
    return [part.scan for part in match.segments or []]
