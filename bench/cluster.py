"""Cluster benchmark: the index split over Ray actors against one index in one process.

    python -m bench.cluster --data ../shared/data --photos 2000 --queries 10000 --name NAME

The registry is made of synthetic signatures as bench/speed.py makes them (a distractor
photo's signature with 15% of its descriptor bits flipped, so that descriptors keep the uneven
distribution of real ones). Half the queries are registered signatures with 5% more of their
bits flipped (a scanned copy), half are signatures of photos not registered. The registry is a
SQLite file in ``--scratch``: a shard moved to another node loads its photos from it.

The same queries ask for candidates (``Thresholds().candidates`` of them, as the matcher does):

- one CandidateIndex in this process (the single machine's answer);
- a ShardedIndex of ``--shards`` actors on a local Ray cluster of one node, then the same
  shards after a second node joined and took half of them over (``rebalance``).

Each answer is compared with the single machine's, candidate for candidate; that is done both
with crowded keys skipped (the default) and read in full, since which keys are crowded depends
on each shard's rows (docs/cluster.md). Throughput is queries a second with ``--threads``
queries in flight. The nodes run on this machine: two nodes share its cores, so the second
node shows what the cluster costs and keeps, not what a second machine would add.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bench.results import save
from bench.speed import SyntheticRegistry
from counterfake.cluster.shards import ShardedIndex
from counterfake.imaging import load_image
from counterfake.index.candidates import CandidateIndex
from counterfake.index.votes import Candidate
from counterfake.registry import Registry
from counterfake.signature.extract import make_signature
from counterfake.thresholds import Thresholds

QUERY_FLIP_RATE = 0.05
NODE = {"num_cpus": 1, "object_store_memory": 150 * 2**20}


def make_queries(registry: SyntheticRegistry, photos: int, count: int) -> list[np.ndarray]:
    """Descriptors of ``count`` queries: copies of registered photos and unregistered ones."""
    rng = np.random.default_rng(20261207)
    queries = []
    for n in range(count):
        if n % 2 == 0:
            descriptors = registry(int(rng.integers(1, photos + 1))).features.descriptors
            flips = np.packbits(rng.random((len(descriptors), 256)) < QUERY_FLIP_RATE, axis=1)
            queries.append(descriptors ^ flips)
        else:  # beyond the registered ids: same templates, other masks
            queries.append(registry(photos + 1 + n).features.descriptors)
    return queries


def answer_all(
    index: Any, queries: list[np.ndarray], threads: int
) -> tuple[list[list[Candidate]], float]:
    """Every query's candidates, and queries a second with ``threads`` in flight."""
    limit = Thresholds().candidates
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        answers = list(pool.map(lambda q: index.candidates(q, limit), queries))
    return answers, len(queries) / (time.perf_counter() - start)


def compare(answers: list[list[Candidate]], reference: list[list[Candidate]]) -> dict:
    same = sum(a == r for a, r in zip(answers, reference, strict=True))
    same_photos = sum(
        [c.photo_id for c in a] == [c.photo_id for c in r]
        for a, r in zip(answers, reference, strict=True)
    )
    return {"same_candidates": same, "same_photos_in_order": same_photos, "of": len(reference)}


def run(args: argparse.Namespace) -> dict:
    import ray
    from ray.cluster_utils import Cluster

    distractors = sorted((args.data / "distractors").glob("*.jpg"))[: args.templates]
    templates = [make_signature(load_image(p), str(p), "0" * 64) for p in distractors]
    synthetic = SyntheticRegistry({}, templates)
    made = [replace(synthetic(p), sha256=f"{p:064x}") for p in range(1, args.photos + 1)]
    queries = make_queries(synthetic, args.photos, args.queries)
    db = str(args.scratch / "cluster-registry.db")  # what a shard moved to a node reloads
    Path(db).unlink(missing_ok=True)
    with Registry(db) as registry:
        registry.register("synthetic", made)
        signatures = dict(registry.signatures())
    out: dict[str, Any] = {
        "photos": args.photos,
        "queries": args.queries,
        "shards": args.shards,
        "threads": args.threads,
        "runs": [],
    }
    cluster = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False})
    try:
        ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
        for skip in (True, False):
            one = CandidateIndex(skip_crowded_keys=skip)
            sharded = ShardedIndex(ray, db, args.shards, skip_crowded_keys=skip)
            for photo_id, signature in signatures.items():
                one.add(photo_id, signature)
                sharded.add(photo_id, signature)
            one.prepare()
            sharded.prepare()
            reference, single = answer_all(one, queries, args.threads)
            runs = [{"where": "one process", "nodes": 0, "queries_per_second": single}]
            for nodes in (1, 2):
                if nodes == 2:
                    cluster.add_node(**NODE)
                    cluster.wait_for_nodes()
                    while sharded.rebalance():
                        pass
                answers, rate = answer_all(sharded, queries, args.threads)
                placed = len(set(sharded.placement()))
                runs.append(
                    {"where": "cluster", "nodes": placed, "queries_per_second": rate}
                    | compare(answers, reference)
                )
            for entry in runs:
                entry["skip_crowded_keys"] = skip
                print(entry, flush=True)
            out["runs"] += runs
            for node in list(cluster.worker_nodes):
                cluster.remove_node(node)
            del sharded
    finally:
        ray.shutdown()
        cluster.shutdown()
    return out


def table(out: dict) -> str:
    lines = [
        f"{out['photos']:,} photos, {out['queries']:,} queries, {out['shards']} shards, "
        f"{out['threads']} queries in flight",
        "| crowded keys | where | nodes | queries/s | same candidates | same photos, in order |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for run in out["runs"]:
        same = f"{run['same_candidates']:,} / {run['of']:,}" if "of" in run else "(reference)"
        photos = f"{run['same_photos_in_order']:,}" if "of" in run else ""
        crowded = "skipped" if run["skip_crowded_keys"] else "read"
        lines.append(
            f"| {crowded} | {run['where']} | {run['nodes']} | {run['queries_per_second']:.0f} "
            f"| {same} | {photos} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--photos", type=int, default=2000)
    parser.add_argument("--templates", type=int, default=100, help="distractors signed")
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4, help="queries in flight")
    parser.add_argument("--scratch", type=Path, default=Path("bench/out"), help="registry here")
    parser.add_argument("--name", help="save the run as bench/results/cluster-NAME.json")
    args = parser.parse_args()
    args.scratch.mkdir(parents=True, exist_ok=True)
    cv2.setNumThreads(1)
    out = run(args)
    if args.name:
        save(f"cluster-{args.name}", out)
    print(table(out))


if __name__ == "__main__":
    main()
