"""Memory of the candidate index per registered photo: how much the process grows.

    python -m bench.index_memory --sizes 100000 1000000 --name compact-1m
    python -m bench.index_memory --index multi-index-hash --sizes 100000 --name mih-100k

The registry is synthetic (bench/speed.py's signatures: distractors' signatures with
bit-flipped descriptors, none repeated). Photos are added to the index, which is then sorted
into its search arrays (``prepare``), and the process's resident memory is read: the growth per
photo since the size before (the first size: since the empty index) is what a photo costs.
``--worker`` files them as a matching worker does, through index/owners.py's shared entries,
whose dictionaries and PDQ index hold each photo too (same-picture checks left out). Run each
index in a process of its own: memory freed by one is not always given back before the next.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

from bench.index_recall import synthetic
from bench.results import save
from bench.speed import SyntheticRegistry, resident_bytes
from counterfake.imaging import load_image
from counterfake.index.candidates import CandidateIndex
from counterfake.index.compact import CompactIndex
from counterfake.index.owners import SharedEntries
from counterfake.signature.extract import make_signature


def measure(index_name: str, sizes: list[int], templates: list, worker: bool) -> list[dict]:
    registry = SyntheticRegistry({}, templates)
    rows = []
    before = resident_bytes()
    index = CompactIndex() if index_name == "compact" else CandidateIndex()
    entries = SharedEntries(index) if worker else None
    photo_id, previous, previous_growth = 0, 0, 0
    for size in sizes:
        started = time.perf_counter()
        while photo_id < size:
            photo_id += 1
            signature = synthetic(registry, templates, photo_id)
            if entries is None:
                index.add(photo_id, signature)
            else:
                entries.add(photo_id, signature, registry)
        index.prepare()
        grown = resident_bytes() - before
        rows.append(
            {
                "registered_photos": size,
                "resident_growth_gb": grown / 1e9,
                "growth_bytes_per_photo": (grown - previous_growth) / (size - previous),
                "array_bytes_per_photo": index.nbytes / len(index),
                "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
                "fill_seconds": time.perf_counter() - started,
            }
        )
        previous, previous_growth = size, grown
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--index", choices=["compact", "multi-index-hash"], default="compact")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--worker", action="store_true", help="through the shared entries")
    parser.add_argument("--name", help="save the run as bench/results/index-memory-NAME.json")
    args = parser.parse_args()
    paths = sorted(str(p) for p in (args.data / "distractors").glob("*.jpg"))[:300]
    templates = [make_signature(load_image(p), p, "0" * 64) for p in paths]
    rows = measure(args.index, sorted(args.sizes), templates, args.worker)
    out = {"index": args.index, "worker": args.worker, "rows": rows}
    if args.name:
        save(f"index-memory-{args.name}", out)
    for row in rows:
        print(
            f"{row['registered_photos']:>10,} photos: {row['growth_bytes_per_photo']:,.0f} B a "
            f"photo resident, {row['array_bytes_per_photo']:,.0f} B of arrays, peak "
            f"{row['peak_rss_gb']:.2f} GB"
        )


if __name__ == "__main__":
    main()
