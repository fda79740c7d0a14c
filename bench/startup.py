"""Start-up of a matching worker: indexing the registry against reading the packed index file.

    python -m bench.startup --data ../shared/data --size 100000 --name 100000

Fills a SQLite registry (``--db``, kept between runs and grown as needed) with the first
``--real`` people photos and synthetic photos up to ``--size``, made as bench/speed.py makes
them (a distractor's signature with 15% of its descriptor bits flipped and its keypoints
jittered); each synthetic photo also gets PDQ hashes of its own (random bits), as distinct
photos have: sharing its template's, it would be checked as a near-identical copy of the
template's other photos (index/owners.py) at every registration, which no real registry asks.

Then, each in a fresh process with the files' pages first dropped from the page cache (a
worker starting after a reboot or on a busy machine; ``posix_fadvise``, so only these files):

- ``rebuild``: ``load_indexes`` without a packed file (what every start did before);
- ``rebuild+write``: the same, writing the packed file for the next start;
- ``packed``: ``load_indexes`` from that file;
- ``packed, warm``: again, the file's pages left in the page cache.

Each reports wall and CPU seconds and the process's peak memory, and the candidates its index
gives for the real photos' own features; the runs must agree. Then ``counterfake
serve`` is started twice on the registry, timed until ``/health`` answers: with no packed
file, and from the file the first start wrote. Saved as bench/results/startup-NAME.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import time
from itertools import islice
from pathlib import Path

import numpy as np

from bench.results import save
from bench.service_load import check_disk, start_worker
from bench.speed import SyntheticRegistry
from counterfake.imaging import load_image
from counterfake.registry import Registry
from counterfake.signature.extract import make_signature
from counterfake.signature.pdq import PdqHash

BATCH = 1000  # synthetic photos per subject and per registry transaction
QUERIES = 50  # real photos whose candidates each run reports


def fill(db: Path, size: int, data: Path, real: int) -> None:
    """Grow the registry at ``db`` to ``size`` photos (the real ones first)."""
    with Registry(db) as registry:
        have = sum(count for _, count in registry.subjects())
    if have >= size:
        return
    people = sorted(data.glob("people/[0-9][0-9][0-9][0-9].jpg"))[:real]
    templates = [
        make_signature(load_image(p), str(p), "0" * 64)
        for p in sorted(data.glob("distractors/*.jpg"))[:300]
    ]
    synthetic = SyntheticRegistry({}, templates)
    rng = np.random.default_rng(have)
    with Registry(db) as registry:
        if have == 0:
            for number, path in enumerate(people):
                signature = make_signature(load_image(path), path.name, f"{number:064x}")
                registry.register(f"real-{number:04d}", [signature])
            have = len(people)
        check_disk(str(db), size - have, 64_000)
        while have < size:
            batch = []
            for photo in range(have, min(size, have + BATCH)):
                signature = synthetic(photo)
                pdq = {
                    name: PdqHash(rng.bytes(32), hash_.quality)
                    for name, hash_ in signature.pdq.items()
                }
                batch.append(dataclasses.replace(signature, pdq=pdq, sha256=f"{photo:064x}"))
            registry.register(f"synthetic-{have}", batch)
            have += len(batch)
            print(f"  registry: {have:,} photos", file=sys.stderr, flush=True)


def drop_cached(*paths: Path) -> None:
    """Drop these files' pages from the page cache (they are clean: nothing is lost)."""
    for path in paths:
        if path.exists():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def child(db: str, packed: str | None) -> dict:
    """Load the worker's indexes once, in this process; what it cost and what it answers."""
    from counterfake.service.engine import load_indexes

    wall, cpu = time.perf_counter(), time.process_time()
    with Registry(db) as registry:
        loaded = load_indexes(registry, packed)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        queries = [signature for _, signature in islice(registry.signatures(), QUERIES)]
    candidates = [
        [(c.photo_id, c.mirrored) for c in loaded.index.candidates(q.features.descriptors, 10)]
        for q in queries
    ]
    return {
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "photos": len(loaded.entries),
        "entries": loaded.entries.entries,
        "candidates": candidates,
    }


def run_child(db: Path, packed: Path | None, cold: bool) -> dict:
    if cold:
        drop_cached(db, *([packed] if packed else []))
    command = [sys.executable, "-m", "bench.startup", "--child", "--db", str(db)]
    if packed is not None:
        command += ["--packed", str(packed)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"the load failed: {done.stderr}")
    return json.loads(done.stdout.splitlines()[-1])


def serve_start(db: Path, packed: Path, log: Path) -> float:
    """Seconds from ``counterfake serve`` to its first /health answer."""
    worker = start_worker(str(db), log, "--index-file", str(packed))
    worker.stop()
    return worker.started_in


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--db", type=Path, default=Path("bench/out/startup/registry.db"))
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--real", type=int, default=100)
    parser.add_argument("--name", help="save the run as bench/results/startup-NAME.json")
    parser.add_argument("--packed", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(str(args.db), args.packed and str(args.packed))))
        return

    args.db.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    fill(args.db, args.size, args.data, args.real)
    print(f"  filled in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    packed = args.db.with_name(args.db.name + ".bench-index")
    packed.unlink(missing_ok=True)
    runs = {
        "rebuild": run_child(args.db, None, cold=True),
        "rebuild+write": run_child(args.db, packed, cold=True),
        "packed": run_child(args.db, packed, cold=True),
        "packed, warm": run_child(args.db, packed, cold=False),
    }
    answers = {name: run.pop("candidates") for name, run in runs.items()}
    for name, run in runs.items():
        print(f"  {name}: {json.dumps(run)}", file=sys.stderr, flush=True)
    log = args.db.with_suffix(".serve.log")
    serve_packed = args.db.with_name(args.db.name + ".serve-index")
    serve_packed.unlink(missing_ok=True)
    drop_cached(args.db)
    serve = {"no packed file (indexes, writes it)": serve_start(args.db, serve_packed, log)}
    drop_cached(args.db, serve_packed)
    serve["from the packed file"] = serve_start(args.db, serve_packed, log)
    out = {
        "photos": runs["rebuild"]["photos"],
        "registry_gb": args.db.stat().st_size / 1e9,
        "packed_gb": packed.stat().st_size / 1e9,
        "loads": runs,
        "same_candidates": all(a == answers["rebuild"] for a in answers.values()),
        "queries": QUERIES,
        "serve_seconds_to_health": serve,
    }
    print(json.dumps(out, indent=1))
    serve_packed.unlink(missing_ok=True)
    if args.name:
        save(f"startup-{args.name}", out)


if __name__ == "__main__":
    main()
