"""Speed of PDQ lookups (counterfake.index.pdq.PdqIndex) at hash-exchange scale.

    python -m bench.exchange_speed                      # 1M hashes, ~2 minutes on 2 cores
    python -m bench.exchange_speed --size 100000 --no-faiss

The hashes are synthetic (seeded random 256-bit codes: a PDQ hash's bits are DCT signs split at
their median, so about half are set and they look random to an index); what is timed is the
index, not hashing. Each query is planted: a copy of an indexed hash with 31 bits flipped
(Meta's threshold, the hardest case for a multi-index), or a fresh random hash that matches
nothing. Every answer is checked against brute force on a sample. faiss's own binary indexes
are timed on the same data for comparison: a flat scan and IndexBinaryMultiHash (faiss is not a
dependency of counterfake: `pip install -e '.[bench]'`, or pass --no-faiss).
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import numpy as np

from counterfake.exchange import PdqRecord, read_pdq_records
from counterfake.index.pdq import PdqIndex
from counterfake.registry import Registry
from counterfake.signature.pdq import MATCH_THRESHOLD


def planted_queries(codes: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Half at distance 31 from an indexed hash, half unrelated."""
    near = codes[rng.choice(len(codes), count // 2, replace=False)].copy()
    for row in near:
        bits = np.unpackbits(row)
        bits[rng.choice(256, MATCH_THRESHOLD, replace=False)] ^= 1
        row[:] = np.packbits(bits)
    far = rng.integers(0, 256, (count - count // 2, 32), dtype=np.uint8)
    return np.concatenate([near, far])


def percentiles(seconds: list[float]) -> str:
    ms = np.array(seconds) * 1000
    return f"{np.percentile(ms, 50):.2f} / {np.percentile(ms, 99):.2f}"


def time_counterfake(codes: np.ndarray, queries: np.ndarray) -> tuple[list, dict]:
    index = PdqIndex()
    started = time.perf_counter()
    index.add_many((str(row), code.tobytes().hex()) for row, code in enumerate(codes))
    build = time.perf_counter() - started
    answers, latencies = [], []
    for query in queries:
        started = time.perf_counter()
        answers.append(index.lookup(query.tobytes().hex()))
        latencies.append(time.perf_counter() - started)
    fresh = "f" * 64
    started = time.perf_counter()
    index.add("fresh", fresh)
    found = index.lookup(fresh)
    add_to_found = time.perf_counter() - started
    assert ("fresh", 0) in found
    return answers, {
        "build_s": build,
        "lookup": percentiles(latencies),
        "add_to_found_ms": add_to_found * 1000,
    }


def time_faiss(codes: np.ndarray, queries: np.ndarray) -> dict[str, dict]:
    import faiss

    results = {}
    flat = faiss.IndexBinaryFlat(256)
    multihash = faiss.IndexBinaryMultiHash(256, 16, 16)
    multihash.nflip = 1
    for name, index, sample in (("faiss flat", flat, 50), ("faiss multi-hash", multihash, 500)):
        started = time.perf_counter()
        index.add(codes)
        build = time.perf_counter() - started
        latencies = []
        for query in queries[:sample]:
            started = time.perf_counter()
            index.range_search(query[None, :], MATCH_THRESHOLD + 1)
            latencies.append(time.perf_counter() - started)
        results[name] = {"build_s": build, "lookup": percentiles(latencies)}
    return results


def check_exact(codes: np.ndarray, queries: np.ndarray, answers: list, sample: int) -> int:
    """How many of the first ``sample`` answers differ from brute force (must be 0)."""
    wrong = 0
    for query, answer in zip(queries[:sample], answers, strict=False):
        distances = np.bitwise_count(codes.view(np.uint64) ^ query.view(np.uint64)).sum(axis=1)
        expected = sorted(
            (str(row), int(distances[row])) for row in np.flatnonzero(distances <= 31)
        )
        wrong += sorted(answer) != expected
    return wrong


def time_import(rows: int, rng: np.random.Generator) -> dict[str, float]:
    """Reading a pdq-photo-hasher file of ``rows`` hashes and storing it in a SQLite registry."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "hashes.csv"
        with path.open("w", newline="") as out:
            writer = csv.writer(out)
            for row, code in enumerate(rng.integers(0, 256, (rows, 32), dtype=np.uint8)):
                writer.writerow([code.tobytes().hex(), 90, f"case-{row}"])
        started = time.perf_counter()
        records: list[PdqRecord] = list(read_pdq_records(path))
        read = time.perf_counter() - started
        with Registry(Path(folder) / "r.db") as registry:
            started = time.perf_counter()
            registry.add_pdq_hashes(records, source="bench")
            store = time.perf_counter() - started
    return {"read_s": read, "store_s": store}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--import-rows", type=int, default=100_000)
    parser.add_argument("--no-faiss", action="store_true", help="skip the faiss comparison")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    codes = rng.integers(0, 256, (args.size, 32), dtype=np.uint8)
    queries = planted_queries(codes, args.queries, rng)
    answers, ours = time_counterfake(codes, queries)
    half = args.queries // 2
    near_found = sum(bool(answer) for answer in answers[:half])
    far_found = sum(bool(answer) for answer in answers[half:])
    wrong = check_exact(codes, queries, answers, sample=200)
    rows = {"counterfake PdqIndex": ours}
    if not args.no_faiss:
        rows |= time_faiss(codes, queries)

    print(f"{args.size:,} hashes, {args.queries:,} lookups at distance <= {MATCH_THRESHOLD}")
    print("| index | build (s) | lookup p50 / p99 (ms) |")
    print("|---|---:|---:|")
    for name, row in rows.items():
        print(f"| {name} | {row['build_s']:.1f} | {row['lookup']} |")
    print(
        f"\nFound {near_found} of {half} planted near hashes (31 bits away) and "
        f"{far_found} of {args.queries - half} unrelated ones; "
        f"answers differing from brute force, of 200 checked: {wrong}."
    )
    print(f"A hash added to a built index is found {ours['add_to_found_ms']:.2f} ms later.")
    imported = time_import(args.import_rows, rng)
    print(
        f"Import of {args.import_rows:,} hashes (pdq-photo-hasher CSV -> SQLite registry): "
        f"read {imported['read_s']:.1f} s, stored {imported['store_s']:.1f} s."
    )


if __name__ == "__main__":
    main()
