"""Speed benchmark: signature extraction next to plain decoding, and match time per query.

    python -m bench.speed --data ../shared/data --cases bench/out/cases

Everything runs on one core (OpenCV and faiss limited to one thread). Extraction is timed on
the people photos; the match time is the time ``Matcher.match`` takes for an already extracted
query, at registry sizes of 1,000 and 100,000 photos. The registry is filled with the real
registered sources plus synthetic signatures: each is the signature of a distractor photo with
15% of its descriptor bits flipped and its keypoints jittered, so that descriptors keep the
uneven distribution of real ones (uniformly random bits would make the index look faster).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import time
from pathlib import Path

import cv2
import faiss
import numpy as np

from counterfake.imaging import load_image
from counterfake.index.memory import CandidateIndex
from counterfake.matching import Matcher
from counterfake.signature.extract import Signature, make_query, make_signature
from counterfake.signature.features import LocalFeatures

FLIP_RATE = 0.15


def per_second(count: int, seconds: float) -> float:
    return count / seconds if seconds else float("inf")


def time_extraction(paths: list[str]) -> dict:
    started = time.perf_counter()
    images = [load_image(p) for p in paths]
    decode = time.perf_counter() - started
    started = time.perf_counter()
    for rgb in images:
        make_query(rgb)
    query = time.perf_counter() - started
    started = time.perf_counter()
    for rgb in images:
        make_signature(rgb, "x", "")
    register = time.perf_counter() - started
    n = len(paths)
    return {
        "images": n,
        "decode_per_s": per_second(n, decode),
        "scan_signature_per_s": per_second(n, query),
        "register_signature_per_s": per_second(n, register),
        "scan_signature_over_decode": query / decode,
        "register_signature_over_decode": register / decode,
    }


def _perturbed(features: LocalFeatures, rng: np.random.Generator) -> LocalFeatures:
    bits = np.unpackbits(features.descriptors, axis=1)
    bits ^= (rng.random(bits.shape) < FLIP_RATE).astype(np.uint8)
    jitter = rng.normal(0, 4, features.xy.shape).astype(np.float32)
    return dataclasses.replace(
        features, descriptors=np.packbits(bits, axis=1), xy=features.xy + jitter
    )


class SyntheticRegistry:
    """Signatures for photo ids beyond the real ones, made on demand and always the same."""

    def __init__(self, real: dict[int, Signature], templates: list[Signature]) -> None:
        self.real = real
        self.templates = templates

    def __call__(self, photo_id: int) -> Signature:
        if photo_id in self.real:
            return self.real[photo_id]
        rng = np.random.default_rng(photo_id)
        template = self.templates[photo_id % len(self.templates)]
        return dataclasses.replace(
            template,
            label=f"synthetic-{photo_id}",
            features=_perturbed(template.features, rng),
            mirrored=_perturbed(template.mirrored, rng),
        )


def time_matching(
    registry_sizes: list[int], real: dict[int, Signature], templates: list[Signature], queries: list
) -> list[dict]:
    rows = []
    signatures = SyntheticRegistry(real, templates)
    index = CandidateIndex()
    for photo_id in real:
        index.add(photo_id, real[photo_id])
    next_id = max(real) + 1
    for size in registry_sizes:
        started = time.perf_counter()
        while len(index) < size:
            index.add(next_id, signatures(next_id))
            next_id += 1
        fill = time.perf_counter() - started
        matcher = Matcher(index, signatures)
        matcher.match(queries[0])  # warm-up
        times = []
        for query in queries:
            started = time.perf_counter()
            matcher.match(query)
            times.append((time.perf_counter() - started) * 1000)
        rows.append(
            {
                "registered_photos": len(index),
                "queries": len(queries),
                "mean_ms": float(np.mean(times)),
                "p50_ms": float(np.percentile(times, 50)),
                "p95_ms": float(np.percentile(times, 95)),
                "max_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
                "fill_seconds": fill,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--cases", type=Path, default=Path("bench/out/cases"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    faiss.omp_set_num_threads(1)

    people = sorted(str(p) for p in (args.data / "people").glob("*.jpg"))
    extraction = time_extraction(people[:100])
    print(json.dumps(extraction), flush=True)

    manifest = json.loads((args.cases / "manifest.json").read_text())
    registered = [s for s in manifest["sources"] if s["registered"]]
    real = {
        i + 1: make_signature(load_image(s["path"]), s["path"], "")
        for i, s in enumerate(registered)
    }
    distractors = manifest["distractors"]
    templates = [make_signature(load_image(p), p, "") for p in distractors[:300]]
    rng = np.random.default_rng(20261122)
    sample = rng.choice(len(manifest["cases"]), args.queries // 2 * 2 - 50, replace=False)
    query_paths = [str(args.cases / manifest["cases"][i]["path"]) for i in sample]
    query_paths += list(distractors[-50:])
    queries = [make_query(load_image(p)) for p in query_paths]
    matching = time_matching(args.sizes, real, templates, queries)
    out = {"extraction": extraction, "matching": matching}
    (args.cases.parent / "speed.json").write_text(json.dumps(out, indent=1))
    print(table(out))


def table(out: dict) -> str:
    e = out["extraction"]
    lines = [
        "| one core | images/s | time vs. decoding |",
        "|---|---:|---:|",
        f"| decode only (Pillow, same files) | {e['decode_per_s']:.0f} | 1.00x |",
        f"| scan signature (features of a scanned image) | {e['scan_signature_per_s']:.0f} | "
        f"{e['scan_signature_over_decode']:.2f}x |",
        f"| registration signature (PDQ x8, features x2, grid) | "
        f"{e['register_signature_per_s']:.0f} | {e['register_signature_over_decode']:.2f}x |",
        "",
        "| registered photos | match per query: mean | p50 | p95 | peak memory |",
        "|---:|---:|---:|---:|---:|",
    ]
    for row in out["matching"]:
        lines.append(
            f"| {row['registered_photos']:,} | {row['mean_ms']:.1f} ms | {row['p50_ms']:.1f} ms | "
            f"{row['p95_ms']:.1f} ms | {row['max_rss_gb']:.1f} GB |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
