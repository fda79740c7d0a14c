"""Memory of ``counterfake serve --workers N`` over a filled registry: what the workers share.

    python -m bench.service_memory --db bench/out/service_load/registry.db --workers 2

Starts the service on a registry (bench/service_load.py leaves one of its largest size), waits
until it answers ``/health``, sends ``--matches`` signature matches of registered photos, and
reads each process's memory from ``/proc/<pid>/smaps_rollup``: Rss (every page it maps), Pss
(each page divided by the number of processes that map it) and the shared part of Rss. The sum
of Pss is what the service costs the machine; with separate ``serve`` processes it would be
about N times one worker's Rss.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import httpx

from bench.service_load import start_worker
from counterfake.db import connect
from counterfake.keys import KeyStore
from counterfake.registry import Registry
from counterfake.signature import cfsig


def gb(kb: int) -> str:
    return f"{kb / 2**20:.2f}"


def memory_kb(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        fields[name] = int(value.split()[0])
    return {
        "rss": fields["Rss"],
        "pss": fields["Pss"],
        "shared": fields["Shared_Clean"] + fields["Shared_Dirty"],
    }


def snapshot(parent: int) -> dict:
    workers = [int(p) for p in Path(f"/proc/{parent}/task/{parent}/children").read_text().split()]
    processes = {"parent": memory_kb(parent)} | {f"worker {p}": memory_kb(p) for p in workers}
    return {
        "processes": processes,
        "total_pss_gb": sum(m["pss"] for m in processes.values()) / 2**20,
        "largest_rss_gb": max(m["rss"] for m in processes.values()) / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--matches", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("bench/out/service_memory.json"))
    args = parser.parse_args()

    with Registry(args.db) as registry:
        photos = sum(count for _, count in registry.subjects())
        queries = []
        for _, signature in registry.signatures():
            queries.append(cfsig.dumps([signature]))
            if len(queries) == 20:
                break
    with connect(args.db) as database:
        _, platform = KeyStore(database).create("platform", "bench-memory")

    log = args.out.with_suffix(".log")
    service = start_worker(args.db, log, "--workers", str(args.workers))
    try:
        result = {"photos": photos, "workers": args.workers}
        result["start_seconds"] = service.started_in
        result["loaded"] = snapshot(service.process.pid)
        headers = {"Authorization": f"Bearer {platform}"}
        with httpx.Client(base_url=service.url, headers=headers, timeout=120) as client:
            for i in range(args.matches):
                files = {"file": ("q.cfsig", queries[i % len(queries)])}
                assert client.post("/match/signatures", files=files).status_code == 200
        result["after_matches"] = snapshot(service.process.pid)
    finally:
        service.stop()
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result))
    print("\n| photos | workers | when | total Pss | largest Rss | each: Rss / Pss / shared |")
    print("|---:|---:|---|---:|---:|---|")
    for when in ("loaded", "after_matches"):
        state = result[when]
        each = "; ".join(
            f"{name}: {gb(m['rss'])} / {gb(m['pss'])} / {gb(m['shared'])} GB"
            for name, m in state["processes"].items()
        )
        print(
            f"| {photos:,} | {args.workers} | {when.replace('_', ' ')} | "
            f"{state['total_pss_gb']:.2f} GB | {state['largest_rss_gb']:.2f} GB | {each} |"
        )
    print(f"\nstarted in {result['start_seconds']:.0f} s")


if __name__ == "__main__":
    main()
