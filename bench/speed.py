"""Speed benchmark: signature extraction next to plain decoding, and match time per query.

    python -m bench.speed --data ../shared/data --cases bench/out/cases

Everything runs on one core (OpenCV limited to one thread). Extraction is timed on the people
photos, next to decoding the same files to the same pixels; the match time is the time
``Matcher.match`` takes for an already extracted query, at registry sizes of 1,000 and 100,000
photos. The registry is filled with the real registered sources plus synthetic signatures: each
is the signature of a distractor photo with 15% of its descriptor bits flipped and its keypoints
jittered, so that descriptors keep the uneven distribution of real ones (uniformly random bits
would make the index look faster). A synthetic signature is decoded from its template's stored
bytes (.cfsig) every time the matcher asks for it, so the match time pays what reading a
signature from the registry costs. Candidate recall is the share of the sampled queries made
from a registered photo whose photo is on the index's shortlist (what verification gets to
see), and index memory is how much the process's resident memory grew per photo added.

Before the timed queries, ``--warm-up`` other cases (not among the timed ones) are matched
once, each fresh index: a service answers a continuous stream, and on this machine the first
few hundred queries after building a 100,000-photo index include a few that take 5-25 times
their later time (all user CPU time; the process takes no page fault nor compaction stall in
them, and the same queries are fast the next time). Their times are reported too, as the cold
pass, so that nothing is hidden.

``--profile`` then matches the same queries once more with each stage's CPU time recorded:
the index's shortlist, signature reads, verification and the decision (which draws a
manipulated match's mask at the scanned image's size), so that the README can say where a
match's time goes, on average and in its slowest queries.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from unittest import mock

import cv2
import numpy as np

from bench.results import save
from counterfake import matching
from counterfake.imaging import load_image
from counterfake.index.candidates import CandidateIndex
from counterfake.index.compact import CompactIndex, Layout
from counterfake.matching import Matcher, Thresholds
from counterfake.signature import cfsig
from counterfake.signature.extract import Signature, make_query, make_signature
from counterfake.signature.features import LocalFeatures

FLIP_RATE = 0.15
FLIP_SEED = 20261130


def per_second(count: int, seconds: float) -> float:
    return count / seconds if seconds else float("inf")


REPEATS = 3  # each stage is timed this many times, interleaved, and the fastest run is kept


def timed(work: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) that ``work`` takes.

    Other jobs on a shared machine stretch the wall time; the CPU time is what one core spent.
    """
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


def time_extraction(paths: list[str]) -> dict:
    images = [load_image(p) for p in paths]
    stages = {
        "decode": lambda: [load_image(p) for p in paths],
        "scan_signature": lambda: [make_query(rgb) for rgb in images],
        "register_signature": lambda: [make_signature(rgb, "x", "") for rgb in images],
    }
    best = {name: (float("inf"), float("inf")) for name in stages}
    for _ in range(REPEATS):
        for name, work in stages.items():
            wall, cpu = timed(work)
            best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
    n = len(paths)
    out: dict = {"images": n, "repeats": REPEATS}
    for name, (wall, cpu) in best.items():
        out[f"{name}_per_s"] = per_second(n, wall)
        out[f"{name}_cpu_ms"] = cpu / n * 1000
        if name != "decode":
            out[f"{name}_over_decode"] = wall / best["decode"][0]
            out[f"{name}_cpu_over_decode"] = cpu / best["decode"][1]
    return out


MASKS = 1024  # a pool of bit-flip masks and jitters, so a synthetic signature costs little to make


class SyntheticRegistry:
    """Signatures for photo ids beyond the real ones, made on demand and always the same."""

    def __init__(self, real: dict[int, Signature], templates: list[Signature]) -> None:
        self.real = real
        self.templates = [cfsig.dumps([t]) for t in templates]
        rng = np.random.default_rng(FLIP_SEED)
        rows = max(len(t.features) for t in templates)
        self.flips = np.stack(
            [np.packbits(rng.random((rows, 256)) < FLIP_RATE, axis=1) for _ in range(MASKS)]
        )
        self.jitter = rng.normal(0, 4, (MASKS, rows, 2)).astype(np.float32)

    def perturbed(self, features: LocalFeatures, photo_id: int, side: int) -> LocalFeatures:
        """The template's features with a mask and a jitter from the pools.

        Each (template, mask) pair serves one photo id up to len(templates) x MASKS / 2 photos
        (153,600 with 300 templates): a registry of repeated signatures would pile identical
        rows into the same buckets of the index.
        """
        pick = (photo_id // len(self.templates) * 2 + side) % MASKS
        n = len(features)
        return dataclasses.replace(
            features,
            descriptors=features.descriptors ^ self.flips[pick, :n],
            xy=features.xy + self.jitter[pick, :n],
        )

    def made(self, template: Signature, photo_id: int) -> Signature:
        """Synthetic photo ``photo_id`` made from ``template`` (its own, ``photo_id`` modulo
        the templates): the template's features under the photo's masks.

        The masks repeat after len(templates) x MASKS / 2 photos (153,600 with 300 templates),
        and a repeated signature would join the first one's entry in index/owners.py instead of
        being indexed; so each later round of photo ids flips a second mask of its own on top.
        """
        features = self.perturbed(template.features, photo_id, 0)
        mirrored = self.perturbed(template.mirrored, photo_id, 1)
        again = photo_id // (len(self.templates) * MASKS // 2)
        if again:
            features = self.perturbed(features, again * len(self.templates), 1)
            mirrored = self.perturbed(mirrored, again * len(self.templates), 0)
        return dataclasses.replace(
            template, label=f"synthetic-{photo_id}", features=features, mirrored=mirrored
        )

    def __call__(self, photo_id: int) -> Signature:
        if photo_id in self.real:
            return self.real[photo_id]
        template = cfsig.loads(self.templates[photo_id % len(self.templates)], "template")[0]
        return self.made(template, photo_id)


def resident_bytes() -> int:
    """This process's resident memory now (Linux)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize()


STAGES = ("index", "read", "verify", "decide")


class StageClock:
    """CPU milliseconds each stage of a match spent, for the query being profiled."""

    def __init__(self) -> None:
        self.spent = dict.fromkeys(STAGES, 0.0)
        self.verified = 0

    def timing(self, stage: str, work: Callable) -> Callable:
        def timed_work(*args, **kwargs):
            started = time.process_time()
            try:
                return work(*args, **kwargs)
            finally:
                self.spent[stage] += (time.process_time() - started) * 1000
                self.verified += stage == "verify"

        return timed_work


@contextmanager
def staged(index: CandidateIndex | CompactIndex, clock: StageClock) -> Iterator[None]:
    """Route the matcher's calls to the index, verification and decision through ``clock``.

    The real functions run; only their CPU time is recorded (the matcher calls them by name,
    so they are wrapped where it looks them up).
    """
    with (
        mock.patch.object(index, "candidates", clock.timing("index", index.candidates)),
        mock.patch.object(matching, "verify", clock.timing("verify", matching.verify)),
        mock.patch.object(matching, "decide", clock.timing("decide", matching.decide)),
    ):
        yield


def profile_matching(
    index: CandidateIndex | CompactIndex, signatures: Callable[[int], Signature], queries: list
) -> dict:
    """Per stage, CPU ms per query: mean, p50, p99, and the mean over the slowest 1% of queries."""
    per_query = []
    for query in queries:
        clock = StageClock()
        matcher = Matcher(index, clock.timing("read", signatures), Thresholds())
        with staged(index, clock):
            started = time.process_time()
            matcher.match(query)
            total = (time.process_time() - started) * 1000
        rest = total - sum(clock.spent.values())
        per_query.append([*clock.spent.values(), rest, total, clock.verified])
    spent = np.array(per_query)
    slowest = spent[np.argsort(spent[:, -2])[-max(1, len(spent) // 100) :]]
    out = {}
    for column, name in enumerate([*STAGES, "rest", "total", "verified"]):
        out[name] = {
            "mean": float(spent[:, column].mean()),
            "p50": float(np.percentile(spent[:, column], 50)),
            "p99": float(np.percentile(spent[:, column], 99)),
            "slowest_1pct_mean": float(slowest[:, column].mean()),
        }
    return out


def time_matching(
    registry_sizes: list[int],
    real: dict[int, Signature],
    templates: list[Signature],
    queries: list,
    owners: list[int | None],
    warm_up: list,
    profile: bool = False,
    index: CandidateIndex | CompactIndex | None = None,
) -> list[dict]:
    """Match times per registry size; ``owners`` names each query's registered photo, if any.
    The index is filled with the synthetic photos themselves (``made``, no decoding), which
    is what the matcher reads back for them."""
    rows = []
    signatures = SyntheticRegistry(real, templates)
    index = CandidateIndex() if index is None else index
    resident_before = resident_bytes()
    previous_size, previous_memory = 0, 0
    for photo_id in real:
        index.add(photo_id, real[photo_id])
    next_id = max(real) + 1
    thresholds = Thresholds()
    for size in registry_sizes:
        started = time.perf_counter()
        while len(index) < size:
            index.add(next_id, signatures.made(templates[next_id % len(templates)], next_id))
            next_id += 1
        index.prepare()
        memory = resident_bytes() - resident_before
        fill = time.perf_counter() - started
        matcher = Matcher(index, signatures, thresholds)
        matcher.match(queries[0])  # loads the compiled kernels
        cold_cpu_times = [timed(partial(matcher.match, query))[1] * 1000 for query in warm_up]
        times, cpu_times = [], []
        for query in queries:
            wall, cpu = timed(partial(matcher.match, query))
            times.append(wall * 1000)
            cpu_times.append(cpu * 1000)
        shortlisted = [
            owner
            in {
                c.photo_id
                for c in matching.shortlist(
                    index, query.features, thresholds.candidates, query.mirror_features
                )
                if c.votes >= thresholds.min_votes
            }
            for query, owner in zip(queries, owners, strict=True)
            if owner is not None
        ]
        rows.append(
            {
                "registered_photos": len(index),
                "queries": len(queries),
                "mean_ms": float(np.mean(times)),
                "p50_ms": float(np.percentile(times, 50)),
                "p99_ms": float(np.percentile(times, 99)),
                "cpu_mean_ms": float(np.mean(cpu_times)),
                "cpu_p50_ms": float(np.percentile(cpu_times, 50)),
                "cpu_p99_ms": float(np.percentile(cpu_times, 99)),
                "cold_queries": len(cold_cpu_times),
                "cold_cpu_mean_ms": float(np.mean(cold_cpu_times)),
                "cold_cpu_p99_ms": float(np.percentile(cold_cpu_times, 99)),
                "cold_cpu_max_ms": float(np.max(cold_cpu_times)),
                "candidate_recall": float(np.mean(shortlisted)),
                "positive_queries": len(shortlisted),
                "index_bytes_per_photo": memory / len(index),
                "growth_bytes_per_photo_since_previous": (memory - previous_memory)
                / (len(index) - previous_size),
                "max_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
                "fill_seconds": fill,
            }
        )
        previous_size, previous_memory = len(index), memory
        if profile:
            rows[-1]["profile"] = profile_matching(index, signatures, queries)
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--cases", type=Path, default=Path("bench/out/cases"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument(
        "--warm-up", type=int, default=200, help="other cases matched untimed before the queries"
    )
    parser.add_argument(
        "--extraction-only", action="store_true", help="time signature extraction, skip matching"
    )
    parser.add_argument(
        "--profile", action="store_true", help="also break each match's CPU time down by stage"
    )
    parser.add_argument(
        "--index", choices=["multi-index-hash", "compact"], default="multi-index-hash"
    )
    parser.add_argument(
        "--word-bits", type=int, default=Layout.word_bits, help="the compact index's word length"
    )
    parser.add_argument("--name", help="save the run as bench/results/speed-NAME.json")
    args = parser.parse_args()
    cv2.setNumThreads(1)

    people = sorted(str(p) for p in (args.data / "people").glob("*.jpg"))
    extraction = time_extraction(people[:100])
    print(json.dumps(extraction), flush=True)
    if args.extraction_only:
        if args.name:
            save(f"speed-{args.name}", {"extraction": extraction, "matching": []})
        print(table({"extraction": extraction, "matching": []}))
        return

    manifest = json.loads((args.cases / "manifest.json").read_text())
    registered = [s for s in manifest["sources"] if s["registered"]]
    real_sources = {i + 1: s for i, s in enumerate(registered)}
    real = {
        i: make_signature(load_image(s["path"]), s["path"], "0" * 64)
        for i, s in real_sources.items()
    }
    distractors = manifest["distractors"]
    templates = [make_signature(load_image(p), p, "0" * 64) for p in distractors[:300]]
    rng = np.random.default_rng(20261122)
    sample = rng.choice(len(manifest["cases"]), args.queries // 2 * 2 - 50, replace=False)
    others = np.setdiff1d(np.arange(len(manifest["cases"])), sample)
    warm_up = [
        make_query(load_image(args.cases / manifest["cases"][i]["path"]))
        for i in rng.choice(others, min(args.warm_up, len(others)), replace=False)
    ]
    photo_id = {s["path"]: i for i, s in real_sources.items()}
    sampled = [manifest["cases"][i] for i in sample]
    query_paths = [str(args.cases / c["path"]) for c in sampled] + list(distractors[-50:])
    owners = [photo_id[c["source_path"]] if c["registered"] else None for c in sampled]
    owners += [None] * 50
    queries = [make_query(load_image(p)) for p in query_paths]
    index = CompactIndex(Layout(word_bits=args.word_bits)) if args.index == "compact" else None
    timings = time_matching(
        args.sizes, real, templates, queries, owners, warm_up, args.profile, index
    )
    out = {"extraction": extraction, "matching": timings, "index": args.index}
    if index is not None:
        out["layout"] = dataclasses.asdict(index.layout)
    (args.cases.parent / "speed.json").write_text(json.dumps(out, indent=1))
    if args.name:
        save(f"speed-{args.name}", out)
    print(table(out))


def table(out: dict) -> str:
    e = out["extraction"]
    lines = [
        "| one core, per image | wall: images/s | wall: vs. decoding | CPU: ms "
        "| CPU: vs. decoding |",
        "|---|---:|---:|---:|---:|",
        f"| decode only (Pillow, same files, same size) | {e['decode_per_s']:.0f} | 1.00x | "
        f"{e['decode_cpu_ms']:.1f} | 1.00x |",
    ]
    for name, label in (
        ("scan_signature", "scan signature (features of a scanned image)"),
        ("register_signature", "registration signature (PDQ x8, features, grid, face)"),
    ):
        lines.append(
            f"| {label} | {e[f'{name}_per_s']:.0f} | {e[f'{name}_over_decode']:.2f}x | "
            f"{e[f'{name}_cpu_ms']:.1f} | {e[f'{name}_cpu_over_decode']:.2f}x |"
        )
    if not out["matching"]:
        return "\n".join(lines)
    lines += [
        "",
        "| registered photos | match per query, wall: mean / p50 / p99 | CPU: mean / p50 / p99 "
        "| candidate recall | index memory per photo | peak memory "
        "| warm-up (cold) pass, CPU: mean / p99 / max |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in out["matching"]:
        lines.append(
            f"| {row['registered_photos']:,} | {row['mean_ms']:.1f} / {row['p50_ms']:.1f} / "
            f"{row['p99_ms']:.1f} ms | {row['cpu_mean_ms']:.1f} / {row['cpu_p50_ms']:.1f} / "
            f"{row['cpu_p99_ms']:.1f} ms | {row['candidate_recall']:.1%} "
            f"({row['positive_queries']} queries) | {row['index_bytes_per_photo'] / 1024:.1f} kB | "
            f"{row['max_rss_gb']:.1f} GB | {row['cold_cpu_mean_ms']:.1f} / "
            f"{row['cold_cpu_p99_ms']:.1f} / {row['cold_cpu_max_ms']:.1f} ms "
            f"({row['cold_queries']} queries) |"
        )
    profiled = [row for row in out["matching"] if "profile" in row]
    if profiled:
        lines += [
            "",
            "| registered photos; CPU ms per query: mean / p50 / p99 (slowest 1%: mean) "
            + "".join(f"| {name} " for name in (*STAGES, "rest", "total"))
            + "| candidates verified |",
            "|---:|" + "---:|" * (len(STAGES) + 3),
        ]
        for row in profiled:
            cells = "".join(
                f"| {p['mean']:.1f} / {p['p50']:.1f} / {p['p99']:.1f} "
                f"({p['slowest_1pct_mean']:.1f}) "
                for p in row["profile"].values()
            )
            lines.append(f"| {row['registered_photos']:,} {cells}|")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
