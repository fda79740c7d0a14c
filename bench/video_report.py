"""The video benchmark's table (bench/results/video.json), for docs/benchmarks.md and between
the markers of docs/video.md; written by ``python -m bench.report``."""

from __future__ import annotations

import json

from bench.results import RESULTS
from bench.video import GROUPS, TRANSFORMS

RESULT = RESULTS / "video.json"
VIDEO_DOC = RESULTS.parent.parent / "docs" / "video.md"
START, END = "<!-- video table: bench/report.py -->", "<!-- end of video table -->"
TARGETS = {"repost": "≥98%", "trim_compilation": "≥95%", "photo_held": "≥95%"}


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


def _three(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def table(result: dict) -> list[str]:
    """The video section: groups against the issue's targets, then every case kind."""
    run = result["run"]
    changed = " (work tree changed)" if run["work_tree_changed"] else ""
    speed, false = result["speed_720p"], result["false_matches"]
    memory = ", ".join(f"{k}: {v} MB" for k, v in result["memory"]["peak_rss_mb"].items())
    lines = [
        "## video",
        "",
        f"Run: commit `{run['commit']}`{changed}, {run['date']}, {run['machine']}, "
        f"`{run['command']}`. Registered: {result['registered']['videos']} videos, "
        f"{result['registered']['photos']} photos.",
        "",
        "| group | target | cases | counterfake | vPDQ alone | MD5 alone | IoU (mean, min) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for group in GROUPS:
        row = result["groups"].get(group, {"cases": 0})
        iou = f"{row['iou_mean']:.3f}, {row['iou_min']:.3f}" if "iou_mean" in row else ""
        lines.append(
            f"| {group} | {TARGETS[group]} | {row['cases']} | {_percent(row.get('found'))} | "
            f"{_percent(row.get('vpdq'))} | {_percent(row.get('md5'))} | {iou} |"
        )
    lines += [
        "",
        f"False matches: **{false['counterfake']}** (vPDQ alone {false['vpdq']}, MD5 alone "
        f"{false['md5']}) over {result['negatives']} negative videos and every positive's "
        "other registered videos and photos (target 0).",
        "",
        f"Speed, 720p cases ({speed['video_seconds']} s of video): scanning "
        f"**{speed['scan_x_realtime_per_core']}x** real time per core (target ≥20x), decoding "
        f"alone {speed['decode_x_realtime_per_core']}x. Peak memory of a scan: {memory}.",
        "",
        "| case kind | cases | counterfake | vPDQ alone | MD5 alone | IoU mean | IoU min |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    kinds = [*TRANSFORMS, "photo_held_2s", "photo_screen_recording"]
    kinds += sorted(k for k in result["rows"] if k not in kinds)
    for kind in kinds:
        row = result["rows"].get(kind)
        if row is None:
            continue
        lines.append(
            f"| {kind} | {row['cases']} | {_percent(row.get('found'))} | "
            f"{_percent(row.get('vpdq'))} | {_percent(row.get('md5'))} | "
            f"{_three(row.get('iou_mean'))} | {_three(row.get('iou_min'))} |"
        )
    return [*lines, ""]


def section() -> list[str]:
    """The section for docs/benchmarks.md, also put between docs/video.md's markers; nothing
    when there is no video result yet."""
    if not RESULT.exists():
        return []
    lines = table(json.loads(RESULT.read_text()))
    if VIDEO_DOC.exists():
        text = VIDEO_DOC.read_text()
        if START in text and END in text:
            head, rest = text.split(START, 1)
            body = "\n".join(lines[2:])  # the doc has its own heading
            VIDEO_DOC.write_text(f"{head}{START}\n{body}\n{END}{rest.split(END, 1)[1]}")
    return lines
