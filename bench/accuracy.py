"""Accuracy benchmark: counterfake next to a PDQ-only baseline, on cases built by bench/cases.py.

    python -m bench.cases --data ../shared/data --out bench/out/cases
    python -m bench.accuracy --cases bench/out/cases

Half of the sources are registered (the manifest says which). Every case and every distractor
is scanned. A positive is a case made from a registered source; it counts as found when the
match names its own source. Everything else is a negative: the 600 distractors and every case
made from an unregistered source. Any match on a negative, and any match of a positive to the
wrong photo, is a false match. Thresholds are the defaults in counterfake.matching.Thresholds,
set on negatives and never per case.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from bench.results import save
from counterfake.imaging import load_image
from counterfake.index.compact import CompactIndex, Layout
from counterfake.registry import Registry
from counterfake.scan import Scanner, hash_files
from counterfake.signature.pdq import MATCH_THRESHOLD, hamming_distance, pdq_hash

EDIT_ORDER = ["inpaint", "paste", "blur", "colour"]


def load_manifest(cases_dir: Path) -> dict:
    return json.loads((cases_dir / "manifest.json").read_text())


def build_registry(manifest: dict, db: Path, workers: int) -> dict[str, list]:
    """Register the registered sources, one subject each; return label -> PDQ dihedral hashes."""
    db.unlink(missing_ok=True)
    paths = {s["path"]: s["id"] for s in manifest["sources"] if s["registered"]}
    pdq: dict[str, list] = {}
    with Registry(db) as registry:
        for result in hash_files(sorted(paths), workers=workers):
            if result.error:
                raise SystemExit(f"cannot register a benchmark source: {result.error}")
            registry.register(f"person-{paths[result.path]}", [result.signature])
            pdq[result.path] = [h.bits for h in result.signature.pdq.values()]
    return pdq


def pdq_baseline(path: str, registered: dict[str, list]) -> str | None:
    """The registered photo whose dihedral PDQ hashes come within Meta's threshold, if any."""
    bits = pdq_hash(load_image(path)).bits
    best, best_distance = None, MATCH_THRESHOLD + 1
    for label, hashes in registered.items():
        distance = min(hamming_distance(bits, h) for h in hashes)
        if distance < best_distance:
            best, best_distance = label, distance
    return best


def iou(predicted: np.ndarray, truth: np.ndarray) -> float:
    union = (predicted | truth).sum()
    return float((predicted & truth).sum() / union) if union else 1.0


def run(cases_dir: Path, workers: int, compact: Layout | None = None) -> dict:
    """Register, scan and count; ``compact``: candidates from a compact index of that layout."""
    manifest = load_manifest(cases_dir)
    out = cases_dir.parent
    registered_pdq = build_registry(manifest, out / "bench.db", workers)
    scanner = Scanner(out / "bench.db", index=CompactIndex(compact) if compact else None)
    cases = manifest["cases"]
    case_paths = [str(cases_dir / c["path"]) for c in cases]
    distractors = [str(Path(p)) for p in manifest["distractors"]]
    started = time.perf_counter()
    results = list(scanner.scan(case_paths + distractors, masks_dir=out / "masks", workers=workers))
    scan_seconds = time.perf_counter() - started
    baseline = [pdq_baseline(p, registered_pdq) for p in case_paths + distractors]
    source_path = {s["id"]: s["path"] for s in manifest["sources"]}

    rows: dict[tuple, list] = defaultdict(list)
    false_matches = {"counterfake": 0, "pdq": 0}
    false_examples: list[str] = []
    kinds, ious = [], []
    same_scene = 0
    for i, result in enumerate(results):
        case = cases[i] if i < len(cases) else None
        own = source_path[case["source"]] if case else None
        positive = bool(case and case["registered"])
        # "same scene" says "another photo of this scene", never "a copy": not a false match
        claims = [m for m in result.matches if m.kind != "same_scene"]
        same_scene += len(result.matches) - len(claims)
        wrong = [m for m in claims if not positive or m.photo != own]
        false_matches["counterfake"] += bool(wrong)
        false_examples += [f"{result.path} -> {m.photo}" for m in wrong]
        false_matches["pdq"] += baseline[i] is not None and (not positive or baseline[i] != own)
        if result.error:
            false_examples.append(f"ERROR {result.error}")
        if not positive:
            continue
        hit = next((m for m in claims if m.photo == own), None)
        pdq_hit = baseline[i] == own
        if case["expected_kind"] == "repost":
            keys = [("repost", "all"), ("repost", case["transform"])]
        else:
            keys = [
                ("manipulated", "all"),
                ("manipulated", f"{case['edit']} {case['target_fraction']:.0%}"),
                ("manipulated", f"size {case['target_fraction']:.0%}"),
                ("manipulated", case["transform"]),
            ]
        kind_right = hit is not None and hit.kind == case["expected_kind"]
        for key in keys:
            rows[key].append((hit is not None, pdq_hit, kind_right))
        if hit is None:
            continue
        kinds.append(hit.kind == case["expected_kind"])
        if case["expected_kind"] == "manipulated":
            truth = cv2.imread(str(cases_dir / case["mask"]), cv2.IMREAD_GRAYSCALE) > 127
            predicted = np.zeros_like(truth)
            if hit.mask:
                predicted = cv2.imread(hit.mask, cv2.IMREAD_GRAYSCALE) > 127
            ious.append(iou(predicted, truth))
    return {
        "rows": {f"{k[0]}|{k[1]}": v for k, v in rows.items()},
        "negatives": sum(1 for c in cases if not c["registered"]) + len(distractors),
        "false_matches": false_matches,
        "same_scene_reports": same_scene,
        "false_examples": false_examples[:50],
        "kind_accuracy": float(np.mean(kinds)) if kinds else 0.0,
        "mean_mask_iou": float(np.mean(ious)) if ious else 0.0,
        "files_scanned": len(results),
        "scan_seconds": scan_seconds,
        "workers": workers,
        "index": "compact" if compact else "multi-index hash",
        "word_bits": compact.word_bits if compact else None,
    }


def counted(summary: dict) -> dict:
    """The summary with each row's per-case outcomes replaced by their counts (a result file
    stays a few kilobytes): ``[cases, found by counterfake, found by PDQ, found with the right
    kind]``."""
    rows = {
        key: [len(values), *(sum(v[column] for v in values) for column in range(3))]
        for key, values in summary["rows"].items()
    }
    return {**summary, "rows": rows}


def row_order(key: str) -> tuple:
    """Reposts first, each group's "all" row first, then sizes, then the rest by name."""
    group, name = key.split("|")
    return (group != "repost", name != "all", not name.startswith("size"), name)


def table(summary: dict) -> str:
    """The Markdown table pasted into the README."""
    lines = [
        "| cases | n | counterfake recall | PDQ-only recall | kind right |",
        "|---|---:|---:|---:|---:|",
    ]

    for key in sorted(summary["rows"], key=row_order):
        values = summary["rows"][key]
        group, name = key.split("|")
        found = np.mean([v[0] for v in values])
        pdq = np.mean([v[1] for v in values])
        kind = sum(v[2] for v in values) / max(1, sum(v[0] for v in values))
        label = f"**{group}, all**" if name == "all" else f"{group}: {name}"
        lines.append(f"| {label} | {len(values)} | {found:.1%} | {pdq:.1%} | {kind:.1%} |")
    fm = summary["false_matches"]
    lines += [
        "",
        f"False matches over {summary['negatives']} negatives: "
        f"counterfake **{fm['counterfake']}**, PDQ-only {fm['pdq']}.  ",
        f"Reported as the same scene (not counted as matches): {summary['same_scene_reports']}.  ",
        f"Kind accuracy (repost vs manipulated, over found positives): "
        f"**{summary['kind_accuracy']:.1%}**.  ",
        f"Mean mask IoU over found manipulated derivatives: **{summary['mean_mask_iou']:.2f}**.  ",
        f"Scanned {summary['files_scanned']} files in {summary['scan_seconds']:.0f} s "
        f"with {summary['workers']} worker(s).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=Path, default=Path("bench/out/cases"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--name", help="save the run as bench/results/accuracy-NAME.json")
    parser.add_argument(
        "--compact-index", action="store_true", help="candidates from index/compact.py"
    )
    parser.add_argument(
        "--word-bits", type=int, default=Layout.word_bits, help="the compact index's word length"
    )
    args = parser.parse_args()
    layout = Layout(word_bits=args.word_bits) if args.compact_index else None
    summary = run(args.cases, args.workers, layout)
    (args.cases.parent / "accuracy.json").write_text(json.dumps(summary, indent=1))
    if args.name:
        save(f"accuracy-{args.name}", counted(summary))
    print(table(summary))
    if summary["false_examples"]:
        print("\nFalse matches and errors (first 50):")
        print("\n".join(summary["false_examples"]))


if __name__ == "__main__":
    main()
