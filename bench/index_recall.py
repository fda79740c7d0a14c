"""Candidate recall of the candidate indexes on the accuracy benchmark's cases, at a padded size.

    python -m bench.index_recall --cases bench/out/cases bench/out/unseen/cases --size 100000

Verification decides what matches; the index only decides what is verified. So an index is
judged by its candidate recall: for each case made from a registered source, whether that
source, in the orientation the case shows it (a ``flip`` or ``mirror`` case is a mirrored
copy), is among the candidates the matcher verifies (the first ``limit`` whose votes reach the
floor). The registry is every registered source of the case sets given, padded to ``--size``
with synthetic photos made as bench/speed.py makes them (distractors' signatures with
bit-flipped descriptors). The multi-index hash (candidates.py) and each layout of the compact
inverted file (compact.py) are asked the same queries; each layout's bytes of arrays per photo
and how many candidates a query verifies (each costs a verification) are saved beside. The
first look only: the tiled second look (tiles.py) is left out.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import cv2
import numpy as np

from bench.results import save
from bench.speed import SyntheticRegistry
from counterfake.imaging import load_image
from counterfake.index.candidates import CandidateIndex
from counterfake.index.compact import CompactIndex, Layout
from counterfake.parallel import in_parallel
from counterfake.signature.extract import Signature, make_query, make_signature
from counterfake.signature.features import LocalFeatures
from counterfake.thresholds import Thresholds

LIMITS = (10, 20, 40)  # candidates verified at most per query
FLOORS = (0.0, 0.3, 0.5, 1.0, 1.5, 2.0)  # vote floors


@dataclasses.dataclass
class Case:
    """A scanned case: its features and mirror image's, and the registered photo it shows."""

    source_set: str
    transform: str
    owner: int | None
    mirrored: bool
    features: LocalFeatures
    mirror: LocalFeatures
    query_ms: float  # CPU time of the scan's query (decoded image to features)
    mirror_ms: float  # ...and of its mirror image's features, which the compact index asks


def _query(item: tuple[str, str, str, int | None, bool]) -> Case:
    source_set, path, transform, owner, mirrored = item
    rgb = load_image(path)
    started = time.process_time()
    query = make_query(rgb)
    made = time.process_time()
    mirror = query.mirror_features()
    query_ms, mirror_ms = (made - started) * 1000, (time.process_time() - made) * 1000
    return Case(source_set, transform, owner, mirrored, query.features, mirror, query_ms, mirror_ms)


def load_cases(
    dirs: list[Path], per_set: int, negatives: int, workers: int
) -> tuple[dict[int, Signature], list[Signature], list[Case]]:
    """Registered sources (ids from 1), distractor templates, and the sampled queries."""
    rng = np.random.default_rng(20261207)
    sources: dict[str, int] = {}
    items, distractors = [], []
    for cases_dir in dirs:
        manifest = json.loads((cases_dir / "manifest.json").read_text())
        name = cases_dir.parent.name if cases_dir.name == "cases" else cases_dir.name
        name = "people" if name == "out" else name
        source_path = {s["id"]: s["path"] for s in manifest["sources"]}
        for source in manifest["sources"]:
            if source["registered"]:
                sources.setdefault(source["path"], len(sources) + 1)
        positives = [c for c in manifest["cases"] if c["registered"]]
        for at in sorted(rng.permutation(len(positives))[:per_set]):
            case = positives[at]
            owner = sources[source_path[case["source"]]]
            path = str(cases_dir / case["path"])
            mirrored = case["transform"] == "flip" or "mirror" in case["transform"]
            items.append((name, path, case["transform"], owner, mirrored))
        others = [str(cases_dir / c["path"]) for c in manifest["cases"] if not c["registered"]]
        others += manifest["distractors"]
        distractors += manifest["distractors"]
        for at in sorted(rng.permutation(len(others))[:negatives]):
            items.append((name, others[at], "negative", None, False))
    # with their mirror images' features, which the compact index's both-orientations layout
    # files (a registry no longer stores them)
    real = {
        photo_id: make_signature(load_image(path), path, "0" * 64, mirror=True)
        for path, photo_id in sources.items()
    }
    unique = sorted(set(distractors))
    templates = [make_signature(load_image(p), p, "0" * 64, mirror=True) for p in unique[:300]]
    return real, templates, list(in_parallel(_query, items, workers))


def synthetic(registry: SyntheticRegistry, templates: list[Signature], photo_id: int) -> Signature:
    """bench/speed.py's synthetic photo ``photo_id`` without its decoding round trip."""
    return registry.made(templates[photo_id % len(templates)], photo_id)


def outcomes(candidates: list, case: Case) -> tuple[list[float], float]:
    """The votes of every candidate, and the true one's rank-ordered position's votes."""
    votes = [c.votes for c in candidates]
    for rank, c in enumerate(candidates):
        if c.photo_id == case.owner and c.mirrored == case.mirrored:
            return votes, float(rank)
    return votes, -1.0


def summarise(results: list[tuple[list[float], float]], cases: list[Case]) -> dict:
    """Recall and candidates verified per query, for each limit and floor, per source set."""
    rows = {}
    sets = sorted({c.source_set for c in cases})
    for limit in LIMITS:
        for floor in FLOORS:
            row: dict = {}
            for source_set in [*sets, "all"]:
                hits, verified, negatives_verified, positives = 0, [], [], 0
                for (votes, rank), case in zip(results, cases, strict=True):
                    if source_set != "all" and case.source_set != source_set:
                        continue
                    count = sum(v >= floor for v in votes[:limit])
                    if case.owner is None:
                        negatives_verified.append(count)
                        continue
                    positives += 1
                    verified.append(count)
                    hits += 0 <= rank < limit and votes[int(rank)] >= floor
                row[source_set] = {
                    "positives": positives,
                    "recall": hits / max(positives, 1),
                    "verified_per_positive": float(np.mean(verified)) if verified else 0.0,
                    "verified_per_negative": float(np.mean(negatives_verified or [0])),
                }
            rows[f"{limit}|{floor}"] = row
    return rows


def parse_layout(text: str) -> Layout:
    """``INDEXEDxBITS[dDISTANCE][m|b]``: b indexes both orientations (default: m, mirror
    queried); e.g. 128x32d7m."""
    orientations = 2 if text.endswith("b") else 1
    text = text.rstrip("mb")
    indexed, rest = text.split("x")
    bits, _, distance = rest.partition("d")
    default = {8: 1, 16: 3, 32: 5, 64: 10}[int(bits)]
    return Layout(
        indexed=int(indexed),
        signature_bits=int(bits),
        max_distance=int(distance) if distance else default,
        orientations=orientations,
    )


def run(args: argparse.Namespace) -> dict:
    started = time.perf_counter()
    real, templates, cases = load_cases(args.cases, args.per_set, args.negatives, args.workers)
    print(f"{len(cases)} queries, {len(real)} registered sources", flush=True)
    registry = SyntheticRegistry(real, templates)
    layouts = {text: parse_layout(text) for text in args.layouts}
    indexes: dict[str, CandidateIndex | CompactIndex] = {
        text: CompactIndex(layout) for text, layout in layouts.items()
    }
    if not args.skip_current:
        indexes["multi-index hash"] = CandidateIndex()
    for photo_id in range(1, args.size + 1):
        signature = real.get(photo_id) or synthetic(registry, templates, photo_id)
        for index in indexes.values():
            index.add(photo_id, signature)
    out: dict = {
        "registered_photos": args.size,
        "queries": len(cases),
        "query_cpu_ms": float(np.mean([c.query_ms for c in cases])),
        "mirror_features_cpu_ms": float(np.mean([c.mirror_ms for c in cases])),
        "indexes": {},
    }
    for name, index in indexes.items():
        index.prepare()
        limit = max(LIMITS)
        cpu = time.process_time()
        if isinstance(index, CompactIndex):
            found = [index.candidates(c.features, limit, c.mirror) for c in cases]
        else:
            found = [
                index.candidates(c.features.descriptors, limit, c.mirror.descriptors) for c in cases
            ]
        lookup_ms = (time.process_time() - cpu) * 1000 / len(cases)
        results = [outcomes(f, c) for f, c in zip(found, cases, strict=True)]
        layout = layouts.get(name)
        out["indexes"][name] = {
            "layout": dataclasses.asdict(layout) if layout else None,
            "array_bytes_per_photo": index.nbytes / len(index),
            "lookup_cpu_ms": lookup_ms,
            "rows": summarise(results, cases),
        }
        print(name, json.dumps(out["indexes"][name]["rows"][f"10|{Thresholds().min_votes}"]))
    out["seconds"] = time.perf_counter() - started
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=Path, nargs="+", default=[Path("bench/out/cases")])
    parser.add_argument("--size", type=int, default=100_000, help="photos in the index")
    parser.add_argument("--per-set", type=int, default=400, help="positive cases per set")
    parser.add_argument("--negatives", type=int, default=50, help="negative cases per set")
    parser.add_argument(
        "--layouts", nargs="+", default=["64x64", "128x32"], help=parse_layout.__doc__
    )
    parser.add_argument("--skip-current", action="store_true")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--name", help="save the run as bench/results/index-recall-NAME.json")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    out = run(args)
    if args.name:
        save(f"index-recall-{args.name}", out)


if __name__ == "__main__":
    main()
