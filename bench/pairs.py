"""Pairs benchmark: source -> derivative pairs found in a shuffled collection, with no registry.

    python -m bench.cases --data ../shared/data --out bench/out/cases
    python -m bench.pairs --cases bench/out/cases [--skip-sources N --limit-sources M] [--workers 2]
    python -m bench.pairs --cases bench/out/cases --scale 100000 --skip-collection

The collection is the people photos (the sources), every case bench/cases.py made from them
(reposts and manipulated derivatives) and the 600 distractors, shuffled with a fixed seed and
handed to ``PairFinder`` as one pile of files. Truth comes from the manifest: each case holds its
source photo, and also the photo whose texture was pasted into it (``donor``) or that stands
beside it in a repost collage (``beside``). Two images are truly related when they hold a photo
in common; a reported pair between images with nothing in common is a **false pair**.

**Pair recall** is the share of cases (every derivative and repost in the collection) reported
as the derivative of a correct source: the source photo's file, or a same-size re-save of it
(``FAITHFUL_TRANSFORMS``, unedited), since no pixel tells a lossless repost from the file it was
made from. Stricter rows ask for the exact source file; a looser one accepts any image of the
same photo. docs/pairs.md says why the first is the headline. ``photos_affected`` is compared
with the number of source photos that have a case in the collection.

The scale run fills the index with synthetic images up to ``--scale`` (each the signature of a
real image with 15% of its descriptor bits flipped and its points jittered, as in
bench/speed.py, and its keypoints shuffled among their places, so that synthetic images are
unrelated to each other; the first 600 are the real images themselves), then times on one core,
in CPU time, the per-image steps: extraction on real files (decoding twice, the reference
signature, the query features), adding to the index, and querying and verifying the real images
(which find their relatives among the real ones, so faces and relations are computed) against
the full index. Images per second is one over the sum of those per-image times; scan, on the
same index, is one decode, the query features and the same query and verification. Not counted:
the short passes over cluster members (confirm, bridge), which depend on how many images are
related; the collection run measures them. Resident memory is read before and after filling.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import resource
import time
from collections import Counter, defaultdict
from pathlib import Path

import cv2
import numpy as np

from bench.accuracy import build_registry
from bench.results import save
from bench.speed import FLIP_RATE
from counterfake.imaging import load_image
from counterfake.index.candidates import CandidateIndex
from counterfake.pairs import PairFinder, Picture
from counterfake.scan import Scanner
from counterfake.signature.extract import make_query, make_signature
from counterfake.signature.features import LocalFeatures

SEED = 20261130
FAITHFUL_TRANSFORMS = ("none", "jpeg")  # same-size re-saves: no pixel tells them from the source


_FLIP_MASKS = [
    np.packbits(np.random.default_rng(i).random((512, 256)) < FLIP_RATE, axis=1) for i in range(64)
]


def unrelated(features: LocalFeatures, rng: np.random.Generator) -> LocalFeatures:
    """Another photo "like" this one: 15% of its descriptor bits flipped (as in bench/speed.py,
    with the flips drawn from a pool of masks so that 100,000 are quick to make) and its
    keypoints moved to one another's places, so it shares the descriptor statistics of a real
    photo but no geometry with it or with any other image made from the same template."""
    n = len(features)
    mask = _FLIP_MASKS[int(rng.integers(64))][rng.integers(0, 512, n)]
    order = rng.permutation(n)
    return dataclasses.replace(
        features, descriptors=features.descriptors ^ mask, xy=features.xy[order]
    )


def peak_memory_gb() -> dict[str, float]:
    """Peak resident memory of this process and of its largest worker so far."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2
    return {"main_gb": round(own, 2), "largest_worker_gb": round(workers, 2)}


def collection(
    manifest: dict,
    cases_dir: Path,
    limit: int | None,
    distractors: int | None = None,
    skip: int = 0,
) -> tuple[list[str], dict]:
    """The shuffled file list and the truth: for each file, the photo it shows (``main``), the
    set of photos whose pixels it holds, and whether it is a faithful copy of its photo (the
    source file, or a case neither edited nor transformed: a same-size re-save).

    The sources are the manifest's ``skip + 1`` to ``skip + limit``: a window other than the
    first sources measures what was not looked at while tuning. The distractors are the first
    ``distractors`` whatever the window."""
    sources = manifest["sources"][skip:][:limit]
    chosen = {s["id"] for s in sources}
    holds: dict[str, set[str]] = {}
    main: dict[str, str] = {}
    faithful: set[str] = set()
    transform: dict[str, str] = {}
    for source in sources:
        holds[source["path"]] = {source["path"]}
        main[source["path"]] = source["path"]
        faithful.add(source["path"])
    for case in manifest["cases"]:
        if case["source"] not in chosen:
            continue
        path = str(cases_dir / case["path"])
        extra = {p for p in (case["donor"], case["beside"]) if p}
        holds[path] = {case["source_path"]} | extra
        transform[path] = f"{case['edit'] or 'repost'}, {case['transform']}"
        if case["edit"] is None and case["transform"] in FAITHFUL_TRANSFORMS:
            faithful.add(path)
        for photo in extra:  # a donor left out by --limit-distractors holds only itself
            holds.setdefault(photo, {photo})
            main.setdefault(photo, photo)
        main[path] = case["source_path"]
    for distractor in manifest["distractors"][:distractors]:
        holds[distractor] = {distractor}
        main[distractor] = distractor
    files = sorted(main)
    random.Random(SEED).shuffle(files)
    sources_shown = [s["path"] for s in sources if any(main[f] == s["path"] != f for f in main)]
    truth = {"holds": holds, "main": main, "faithful": faithful, "transform": transform}
    return files, truth | {"sources": [s["path"] for s in sources], "affected": sources_shown}


def relation(a: str, b: str, truth: dict) -> str | None:
    """What truly links two images: derivative, sibling, donor, or nothing (None)."""
    holds, main = truth["holds"], truth["main"]
    if main[a] == main[b]:
        return "derivative" if a == main[a] or b == main[b] else "sibling"
    if holds[a] & holds[b]:
        return "donor"
    return None


def score(doc: dict, truth: dict, files: list[str]) -> dict:
    """The figures of the table; docs/pairs.md says why pair recall is defined as it is."""
    main, holds, faithful = truth["main"], truth["holds"], truth["faithful"]
    found = Counter()
    false_pairs = []
    sources_of: dict[str, set[str]] = defaultdict(set)  # derivative -> sources reported
    for pair in doc["pairs"]:
        kind = relation(pair["source"], pair["derivative"], truth)
        if kind is None:
            false_pairs.append(f"{pair['source']} -> {pair['derivative']}")
        else:
            found[kind] += 1
        sources_of[pair["derivative"]].add(pair["source"])
    cases = [f for f in files if main[f] != f]

    def recall(correct) -> float:
        return float(np.mean([any(correct(a, c) for a in sources_of[c]) for c in cases]))

    def paired(c: str) -> bool:
        return any(main[a] == main[c] and a in faithful for a in sources_of[c])

    by_transform: dict[str, list[bool]] = defaultdict(list)
    for c in cases:
        by_transform[truth["transform"][c]].append(paired(c))
    # a derivative reported as the source of a faithful copy of its photo: direction wrong
    reversed_pairs = sum(
        1
        for pair in doc["pairs"]
        if main[pair["source"]] != pair["source"]
        and pair["source"] not in faithful
        and pair["derivative"] in faithful
        and main[pair["derivative"]] == main[pair["source"]]
    )
    clustered = defaultdict(set)
    pure = members = 0
    for cluster in doc["clusters"]:
        photo = main[cluster["original"]]
        for member in cluster["members"]:
            clustered[member].add(photo)
            members += 1
            pure += photo in holds[member]
    counted = [c for c in doc["clusters"] if c.get("affected", True)]
    counted_photos = Counter(main[c["original"]] for c in counted)
    affected = set(truth["affected"])
    return {
        "images": len(files),
        "cases": len(cases),
        "pair_recall": recall(lambda a, c: main[a] == main[c] and a in faithful),
        "pair_recall_exact_source_file": recall(lambda a, c: a == main[c]),
        "pair_recall_any_copy_of_the_photo": recall(lambda a, c: main[a] == main[c]),
        "pair_recall_by_case": {
            name: float(np.mean(hits)) for name, hits in sorted(by_transform.items())
        },
        "missed_cases": [c for c in cases if not paired(c)][:40],
        "case_in_its_photo_cluster": float(np.mean([main[c] in clustered[c] for c in cases])),
        "derivatives_reported_as_source_of_a_faithful_copy": reversed_pairs,
        "reported_pairs": len(doc["pairs"]),
        "true_relations_reported": dict(found),
        "false_pairs": len(false_pairs),
        "false_pair_examples": false_pairs[:30],
        "cluster_purity": pure / members if members else 1.0,
        "clusters": len(doc["clusters"]),
        "clusters_not_counted": len(doc["clusters"]) - len(counted),
        "photos_affected": doc["photos_affected"],
        "photos_affected_true": len(affected),
        "affected_counted_once": sum(1 for p in affected if counted_photos[p] == 1),
        "affected_split": sum(1 for p in affected if counted_photos[p] > 1),
        "affected_missing": sum(1 for p in affected if counted_photos[p] == 0),
        "counted_originals_not_a_source_photo": sum(
            n for p, n in counted_photos.items() if p not in affected
        ),
        "scenes": doc["scenes"],
        "errors": len(doc["errors"]),
    }


def run_collection(
    cases_dir: Path, limit: int | None, distractors: int | None, workers: int, skip: int = 0
) -> dict:
    manifest = json.loads((cases_dir / "manifest.json").read_text())
    if any("donor" not in case for case in manifest["cases"]):
        raise SystemExit(
            f"{cases_dir}/manifest.json predates donor records: rebuild it with bench.cases"
        )
    files, truth = collection(manifest, cases_dir, limit, distractors, skip)
    started, cpu = time.perf_counter(), cpu_seconds()
    doc = PairFinder(workers=workers).find(files).to_json()
    pairs_seconds, pairs_cpu = time.perf_counter() - started, cpu_seconds() - cpu
    memory = peak_memory_gb()
    (cases_dir.parent / "pairs-doc.json").write_text(json.dumps({"doc": doc, "files": files}))
    result = score(doc, truth, files)
    build_registry(manifest, cases_dir.parent / "pairs-bench.db", workers)
    started, cpu = time.perf_counter(), cpu_seconds()
    for _ in Scanner(cases_dir.parent / "pairs-bench.db").scan(files, workers=workers):
        pass
    scan_seconds, scan_cpu = time.perf_counter() - started, cpu_seconds() - cpu
    result.update(
        workers=workers,
        pairs_seconds=pairs_seconds,
        pairs_images_per_s=len(files) / pairs_seconds,
        pairs_cpu_seconds_per_image=pairs_cpu / len(files),
        scan_seconds=scan_seconds,
        scan_images_per_s=len(files) / scan_seconds,
        scan_cpu_seconds_per_image=scan_cpu / len(files),
        peak_memory=memory,
    )
    return result


def rescore(
    saved: Path, cases_dir: Path, limit: int | None, distractors: int | None, skip: int = 0
) -> dict:
    """The accuracy figures of a document saved by an earlier run, scored again."""
    manifest = json.loads((cases_dir / "manifest.json").read_text())
    files, truth = collection(manifest, cases_dir, limit, distractors, skip)
    run = json.loads(saved.read_text())
    if sorted(run["files"]) != sorted(files):
        raise SystemExit(f"{saved}: made from another collection than these options give")
    return score(run["doc"], truth, files)


def cpu_seconds() -> float:
    """CPU time of this process and of its finished workers, all cores together."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime


def run_scale(cases_dir: Path, size: int, queries: int) -> dict:
    """Per-image costs on one core with ``size`` images in the index (see the docstring)."""
    cv2.setNumThreads(1)
    manifest = json.loads((cases_dir / "manifest.json").read_text())
    real = [str(cases_dir / c["path"]) for c in manifest["cases"][:300]]
    real += manifest["distractors"][:300]
    started = time.process_time()
    images = [load_image(p) for p in real]
    decode = (time.process_time() - started) / len(real)
    started = time.process_time()
    templates = [make_signature(rgb, "t", "", exchange=False, face=False) for rgb in images]
    signature = (time.process_time() - started) / len(real)
    started = time.process_time()
    template_queries = [make_query(rgb) for rgb in images]
    query_extract = (time.process_time() - started) / len(real)
    del images

    finder = PairFinder()
    rng = np.random.default_rng(SEED)
    resident_before = resident_gb()
    started = time.process_time()
    for key in range(size):
        template = templates[key % len(templates)]
        synthetic = (
            template
            if key < len(templates)
            else dataclasses.replace(
                template,
                features=unrelated(template.features, rng),
                mirrored=unrelated(template.mirrored, rng),
            )
        )
        finder.add(key, synthetic, real[key % len(real)])
    finder.index.prepare()
    fill = time.process_time() - started
    resident_after = resident_gb()
    # the cost of making each synthetic signature is not the index's: measure adding alone
    probe = CandidateIndex()
    started = time.process_time()
    for key in range(2000):
        probe.add(key, finder.signatures[key])
    add = (time.process_time() - started) / 2000
    del probe

    def timed(keys: np.ndarray) -> tuple[float, int]:
        started, related = time.process_time(), 0
        for key in keys:
            template = template_queries[key % len(template_queries)]
            query = (
                template
                if key < len(templates)
                else dataclasses.replace(template, features=unrelated(template.features, rng))
            )
            file = real[key % len(real)]
            picture = Picture(int(key), file, file, sha256="0" * 64)
            _, relations = finder.relate_query(picture, query)
            related += len(relations)
        return (time.process_time() - started) / len(keys), related

    real_keys = rng.permutation(min(size, len(real)))[:queries]
    synthetic_keys = rng.choice(np.arange(len(real), size), queries, replace=False)
    query_verify, related = timed(real_keys)
    unrelated_verify, _ = timed(synthetic_keys)
    store_gb = finder.signatures.path.stat().st_size / 1024**3
    finder.close()
    per_image = 2 * decode + signature + query_extract + add + query_verify
    scan_per_image = decode + query_extract + query_verify
    return {
        "images_in_index": size,
        "queries_timed": len(real_keys),
        "relations_found": related,
        "one_core_cpu_seconds_per_image": {
            "decode (twice)": 2 * decode,
            "reference signature": signature,
            "query features": query_extract,
            "index add": add,
            "query and verify (real images)": query_verify,
            "query and verify (synthetic, unrelated)": unrelated_verify,
        },
        "pairs_images_per_s_one_core": 1 / per_image,
        "scan_images_per_s_one_core": 1 / scan_per_image,
        "index_fill_cpu_seconds": fill,
        "resident_gb_after_fill": resident_after,
        "resident_bytes_per_indexed_image": (resident_after - resident_before) * 1024**3 / size,
        "signature_file_gb": store_gb,
        "peak_memory": peak_memory_gb(),
    }


def resident_gb() -> float:
    """Resident memory of this process now (not its peak)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 1024**3


def table(result: dict) -> str:
    lines = ["| pairs benchmark | value |", "|---|---:|"]
    if "pair_recall" in result:
        r = result
        found = r["true_relations_reported"]
        lines += [
            f"| images (sources + cases + distractors, shuffled) | {r['images']:,} |",
            f"| **pair recall**: case reported as derivative of its source or a same-size "
            f"re-save of it | **{r['pair_recall']:.1%}** |",
            f"| pair recall, strict: ... of the exact source file | "
            f"{r['pair_recall_exact_source_file']:.1%} |",
            f"| pair recall, loose: ... of any image of the same photo | "
            f"{r['pair_recall_any_copy_of_the_photo']:.1%} |",
            f"| case placed in its source photo's cluster | {r['case_in_its_photo_cluster']:.1%} |",
            f"| derivatives reported as the source of a faithful copy | "
            f"{r['derivatives_reported_as_source_of_a_faithful_copy']} |",
            f"| **false pairs** | **{r['false_pairs']}** |",
            f"| pairs reported: source-derivative / sibling / donor | "
            f"{found.get('derivative', 0)} / {found.get('sibling', 0)} / {found.get('donor', 0)} |",
            f"| cluster purity | {r['cluster_purity']:.1%} |",
            f"| original photos affected: reported / true | "
            f"{r['photos_affected']} / {r['photos_affected_true']} |",
            f"| true photos counted once / split / missing | {r['affected_counted_once']} / "
            f"{r['affected_split']} / {r['affected_missing']} |",
            f"| counted originals that are no source photo | "
            f"{r['counted_originals_not_a_source_photo']} |",
            f"| related clusters not counted (donor, collage partner) | "
            f"{r['clusters_not_counted']} |",
            f"| scenes (counted originals sharing background joined) | {r['scenes']} |",
        ]
    if "pairs_images_per_s" in result:
        r = result
        lines += [
            f"| pairs throughput, {r['workers']} workers | "
            f"{r['pairs_images_per_s']:.1f} images/s ({r['pairs_cpu_seconds_per_image']:.3f} "
            f"CPU s/image) |",
            f"| scan throughput, same files and workers | {r['scan_images_per_s']:.1f} images/s "
            f"({r['scan_cpu_seconds_per_image']:.3f} CPU s/image) |",
            f"| pairs speed / scan speed, by CPU time (target ≥ 0.25) | "
            f"{r['scan_cpu_seconds_per_image'] / r['pairs_cpu_seconds_per_image']:.2f} |",
            f"| peak memory: main / largest worker | {r['peak_memory']['main_gb']:.2f} GB / "
            f"{r['peak_memory']['largest_worker_gb']:.2f} GB |",
        ]
    if "scale" in result:
        s = result["scale"]
        costs = s["one_core_cpu_seconds_per_image"]
        lines += [
            f"| scale: images in the index | {s['images_in_index']:,} |",
            f"| scale: pairs throughput, one core (CPU time) | "
            f"{s['pairs_images_per_s_one_core']:.1f} images/s |",
            f"| scale: scan throughput, same index, one core | "
            f"{s['scan_images_per_s_one_core']:.1f} images/s |",
            f"| scale: query and verify, real / synthetic image | "
            f"{costs['query and verify (real images)'] * 1000:.0f} ms / "
            f"{costs['query and verify (synthetic, unrelated)'] * 1000:.0f} ms |",
            f"| scale: resident memory after filling / per indexed image | "
            f"{s['resident_gb_after_fill']:.2f} GB / "
            f"{s['resident_bytes_per_indexed_image'] / 1024:.1f} KB |",
            f"| scale: signatures spilled to disk | {s['signature_file_gb']:.2f} GB |",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=Path, default=Path("bench/out/cases"))
    parser.add_argument("--skip-sources", type=int, default=0, help="start after N sources")
    parser.add_argument("--limit-sources", type=int, default=None)
    parser.add_argument("--limit-distractors", type=int, default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--scale", type=int, default=0, help="images in the scale run (0: none)")
    parser.add_argument("--queries", type=int, default=1000, help="timed queries at scale")
    parser.add_argument("--skip-collection", action="store_true")
    parser.add_argument("--rescore", type=Path, help="score a saved pairs-doc.json again, no run")
    parser.add_argument("--name", help="save the run as bench/results/pairs-NAME.json")
    args = parser.parse_args()
    result: dict = {}
    if args.rescore:
        result = rescore(
            args.rescore, args.cases, args.limit_sources, args.limit_distractors, args.skip_sources
        )
        print(json.dumps(result))
        print(table(result))
        return
    if not args.skip_collection:
        result = run_collection(
            args.cases, args.limit_sources, args.limit_distractors, args.workers, args.skip_sources
        )
        print(json.dumps(result), flush=True)
    if args.scale:
        result["scale"] = run_scale(args.cases, args.scale, args.queries)
        print(json.dumps(result["scale"]), flush=True)
    name = "pairs-scale.json" if args.skip_collection else "pairs.json"
    (args.cases.parent / name).write_text(json.dumps(result, indent=1))
    if args.name:
        save(f"pairs-{args.name}", result)
    print(table(result))


if __name__ == "__main__":
    main()
