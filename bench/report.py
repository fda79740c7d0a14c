"""Write docs/benchmarks.md from the result files in bench/results/, never by hand.

    python -m bench.report

It prints the per-source table that the README's benchmark section shows. Each accuracy run
saved with ``python -m bench.accuracy --name SOURCE`` becomes one row of that table and one
section of the page; the file's commit, date, machine and command are printed beside it, so
every figure can be traced to the run that produced it.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench import video_report
from bench.accuracy import row_order
from bench.results import RESULTS

DOCS = RESULTS.parent.parent / "docs" / "benchmarks.md"
SOURCES = {
    "people": "people photos (bench/cases.py: 9 reposts, 12 edits at 20/35/50% per photo)",
    "unseen": "people photos, held-out edits and transforms (bench/unseen.py)",
    "studio": "studio photos of women in the same poses, 192x256 (bench/sources.py)",
    "scenes": "distinct photos of one scene, Holidays groups (bench/sources.py)",
    "stress": "people photos in the situations issue 16 found hard (bench/stress.py)",
}


def _recall(rows: dict, key: str) -> tuple[int, float, float]:
    """(cases, share found by counterfake, share found by PDQ) of a row saved by
    ``bench.accuracy.counted``."""
    cases, found, pdq = rows.get(key, (0, 0, 0))[:3]
    if not cases:
        return 0, float("nan"), float("nan")
    return cases, found / cases, pdq / cases


def _kind(rows: dict, key: str) -> str:
    """The share of a row's found cases given the right kind; results saved before the
    column existed show a dash."""
    row = rows[key]
    return f"{row[3] / row[1]:.1%}" if len(row) > 3 and row[1] else "-"


def headline(name: str, result: dict) -> str:
    rows = result["rows"]
    reposts, repost_recall, repost_pdq = _recall(rows, "repost|all")
    edits, edit_recall, edit_pdq = _recall(rows, "manipulated|all")
    false = result["false_matches"]
    return (
        f"| {name} | {reposts} | {repost_recall:.1%} ({repost_pdq:.1%}) | {edits} | "
        f"{edit_recall:.1%} ({edit_pdq:.1%}) | **{false['counterfake']}** of "
        f"{result['negatives']} ({false['pdq']}) | {result.get('same_scene_reports', 0)} | "
        f"{result['kind_accuracy']:.1%} | {result['mean_mask_iou']:.2f} |"
    )


def section(name: str, result: dict) -> list[str]:
    run = result["run"]
    lines = [
        f"## {name}",
        "",
        SOURCES.get(name, name) + ".",
        "",
        f"Run: commit `{run['commit']}`{' (work tree changed)' if run['work_tree_changed'] else ''}"
        f", {run['date']}, {run['machine']}, `{run['command']}`.",
        "",
        "| cases | n | counterfake | PDQ only | kind right |",
        "|---|---:|---:|---:|---:|",
    ]

    for key in sorted(result["rows"], key=row_order):
        group, label = key.split("|")
        n, found, pdq = _recall(result["rows"], key)
        shown = f"**{group}, all**" if label == "all" else f"{group}: {label}"
        kind = _kind(result["rows"], key)
        lines.append(f"| {shown} | {n} | {found:.1%} | {pdq:.1%} | {kind} |")
    if result.get("false_examples"):
        lines += ["", "False matches (first ones):", ""]
        lines += [
            f"- `{Path(e.split(' -> ')[0]).name} -> {Path(e.split(' -> ')[-1]).name}`"
            for e in result["false_examples"][:20]
        ]
    return [*lines, ""]


HEADER = [
    "| source | reposts | found (PDQ) | derivatives | found (PDQ) | false matches (PDQ) "
    "| same scene | kind right | mask IoU |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
]


def write() -> str:
    results = {
        path.stem.removeprefix("accuracy-"): json.loads(path.read_text())
        for path in sorted(RESULTS.glob("accuracy-*.json"))
    }
    order = [name for name in SOURCES if name in results]  # before/after runs: comparisons()
    lines = [
        "# Benchmarks",
        "",
        "Written by `python -m bench.report` from the result files in bench/results/; do not edit",
        "by hand. Every source is scored the same way (bench/accuracy.py): a positive is a case",
        "made from a registered photo, found when a repost or manipulated match names that photo;",
        "a false match is any such match on a negative (a case of an unregistered photo, a",
        "distractor, another photo of a registered scene) or to the wrong photo. `same_scene`",
        "reports are neither. PDQ alone (Meta's threshold 31) is in brackets. The matching",
        "constants were set on studio negatives only (bench/background.py, docs/matching.md):",
        "the other sources are a cross-source check.",
        "",
        *HEADER,
        *[headline(name, results[name]) for name in order],
        "",
    ]
    for name in order:
        lines += section(name, results[name])
    lines += comparisons()
    lines += video_report.section()
    DOCS.write_text("\n".join(lines))
    return "\n".join([*HEADER, *[headline(name, results[name]) for name in order]])


# what a run measured of the code's answers, as against how long it took on a shared machine
TIMINGS = ("seconds", "_per_s", "_per_image", "peak_memory", "workers", "run")
HEADLINES = {
    "accuracy": (
        "negatives",
        "false_matches",
        "same_scene_reports",
        "kind_accuracy",
        "mean_mask_iou",
        "rows.repost|all",
        "rows.manipulated|all",
    ),
    "pairs": (
        "images",
        "pair_recall",
        "false_pairs",
        "reported_pairs",
        "clusters",
        "photos_affected",
        "scenes",
        "cluster_purity",
    ),
}


def _flat(value: object, prefix: str = "") -> dict[str, object]:
    """Every figure of a result file by its dotted key, timings and the run's context left out."""
    if isinstance(value, dict):
        flat: dict[str, object] = {}
        for key, item in value.items():
            if not any(mark in key for mark in TIMINGS):
                flat |= _flat(item, f"{prefix}{key}.")
        return flat
    return {prefix.rstrip("."): value}


def _cell(value: object) -> str:
    """A figure as a table cell: floats to six digits, a bar escaped."""
    text = f"{value:.6g}" if isinstance(value, float) else str(value)
    return text.replace("|", "\\|")


def comparisons() -> list[str]:
    """A side-by-side of every pair of result files named ``…-before`` and ``…-after``: the
    same benchmark run on the code before and after a change meant to keep behaviour."""
    lines = [
        "## Before and after a refactor",
        "",
        "Each pair of result files named `-before` and `-after` is the same run on the code",
        "before and after a change meant to keep behaviour (the commits are in the files).",
        "Every figure is compared except timings; the table shows the headline ones.",
        "",
    ]
    for before_path in sorted(RESULTS.glob("*-before.json")):
        after_path = before_path.with_name(before_path.name.replace("-before", "-after"))
        if not after_path.exists():
            continue
        kind = before_path.stem.split("-")[0]
        runs = [json.loads(path.read_text()) for path in (before_path, after_path)]
        before, after = (_flat(run) for run in runs)
        differing = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        lines += [
            f"**{before_path.stem.removesuffix('-before')}**: {len(before)} figures compared, "
            + ("all equal." if not differing else f"{len(differing)} differ: {differing[:10]}."),
            f"Before: commit `{runs[0]['run']['commit']}`, after: commit "
            f"`{runs[1]['run']['commit']}`; `{runs[1]['run']['command']}`.",
            "",
            "| figure | before | after |",
            "|---|---:|---:|",
        ]
        for key in HEADLINES.get(kind, ()):
            shown = [k for k in sorted(before) if k == key or k.startswith(key + ".")]
            lines += [
                f"| {_cell(k)} | {_cell(before.get(k))} | {_cell(after.get(k))} |" for k in shown
            ]
        lines.append("")
    return lines


if __name__ == "__main__":
    print(write())
