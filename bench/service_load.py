"""Load run of the HTTP service: the real server (``counterfake serve``) on 127.0.0.1.

    python -m bench.service_load --cases bench/out/cases --sizes 10000 100000

For each registry size, two worker processes serve one SQLite registry (as a deployment runs
several workers on one PostgreSQL registry), and 32 concurrent clients, spread over both,
send image matches (multipart JPEG uploads of benchmark cases) and then signature matches (the
same images hashed client-side, ``counterfake hash``). Bounded: at most ``--image-requests`` and
``--signature-requests`` requests, and ``--phase-seconds`` per phase.

The registry holds the benchmark's registered photos plus synthetic signatures up to the size
(as in bench/speed.py: a distractor's signature with 15% of descriptor bits flipped and the
keypoints jittered, so descriptors keep the uneven distribution of real ones).

During both phases a helpline registers unregistered photos one at a time on worker A, and
withdraws every other one again. For each it measures the time until worker B's feed thread
has it in B's index (B's ``/health``), the time until a match request to B finds it (that
request's queueing included), and whether the first match request sent to B after A answered
already found it; after a withdrawal, the same until B stops. At
the end, every photo kept must match on both workers and every withdrawn one on neither.

A worker's first few hundred matches on a freshly loaded index are slower (bench/speed.py's
cold pass), so each worker first answers ``--warm-up`` signature matches of other cases,
untimed, as a worker in service would have before the load this run measures.

Reported: throughput and p50/p99 latency per kind, each worker's memory (RSS) after loading,
memory per registered photo, time to become matchable / to stop matching on the other worker.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

from bench.speed import SyntheticRegistry
from counterfake.db import connect
from counterfake.imaging import load_image
from counterfake.keys import KeyStore
from counterfake.registry import Registry
from counterfake.signature import cfsig
from counterfake.signature.extract import Signature, make_signature

CLIENTS = 32
HELPLINE = "bench-helpline"
BATCH = 1000  # synthetic photos per subject and per registry transaction


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclasses.dataclass
class Worker:
    url: str
    process: subprocess.Popen
    started_in: float

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


def start_worker(db: str, log: Path, *options: str) -> Worker:
    """``counterfake serve`` (with ``options``), once its /health answers."""
    port = free_port()
    started = time.perf_counter()
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "counterfake.cli", "serve", "--db", db, "--port", str(port),
             "--rate-limit", "100000", "--burst", "100000", *options],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"worker exited: see {log}")
        try:
            if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                return Worker(url, process, time.perf_counter() - started)
        except httpx.HTTPError:
            time.sleep(0.5)


def fill_registry(db: str, size: int, real: list[Signature], templates: list[Signature]) -> int:
    """Grow the registry to ``size`` photos: the real ones first, then synthetic ones."""
    with Registry(db) as registry:
        have = sum(count for _, count in registry.subjects())
        if have == 0:
            for i, signature in enumerate(real):
                registry.register(f"{HELPLINE}/registered-{i:04d}", [signature])
            have = len(real)
        synthetic = SyntheticRegistry({}, templates)
        next_id = 10_000_000 + have
        check_disk(db, size - have, len(cfsig.dumps([synthetic(next_id)])))
        while have < size:
            count = min(BATCH, size - have)
            batch = []
            for photo_id in range(next_id, next_id + count):
                signature = synthetic(photo_id)
                batch.append(dataclasses.replace(signature, sha256=f"{photo_id:064x}"))
            registry.register(f"{HELPLINE}/synthetic-{next_id}", batch)
            have += count
            next_id += count
            print(f"  registry: {have:,} photos", file=sys.stderr, flush=True)
    return have


def check_disk(db: str, photos: int, signature_bytes: int) -> None:
    """Refuse to start a fill that would take more than half the free disk.

    A stored photo is its signature blob plus ~1 kB of rows beside it (PDQ hashes, the change
    feed, indexes); SQLite's WAL may briefly hold a batch more.
    """
    need = photos * (signature_bytes + 1024)
    free = shutil.disk_usage(Path(db).resolve().parent).free
    print(f"  registry: {photos:,} more photos need ~{need / 1e9:.1f} GB on disk, "
          f"{free / 1e9:.0f} GB free", file=sys.stderr, flush=True)  # fmt: skip
    if need > free / 2:
        raise SystemExit(f"{db}: {photos:,} more photos need ~{need / 1e9:.0f} GB, more than half "
                         f"the {free / 1e9:.0f} GB free; choose a smaller --sizes")  # fmt: skip


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def load_phase(
    workers: list[Worker], platform_key: str, requests: list[tuple[str, bytes, str]],
    seconds: float, clients: int = CLIENTS,
) -> dict:  # fmt: skip
    """Send ``requests`` (endpoint, body, name) from ``clients`` threads; stop at ``seconds``."""
    deadline = time.monotonic() + seconds
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    position = iter(range(len(requests)))

    def client(number: int) -> None:
        worker = workers[number % len(workers)]
        headers = {"Authorization": f"Bearer {platform_key}"}
        with httpx.Client(base_url=worker.url, headers=headers, timeout=120) as http:
            while time.monotonic() < deadline:
                with lock:
                    i = next(position, None)
                if i is None:
                    return
                endpoint, body, name = requests[i]
                started = time.perf_counter()
                answer = http.post(endpoint, files={"file": (name, body)})
                elapsed = time.perf_counter() - started
                with lock:
                    if answer.status_code == 200:
                        latencies.append(elapsed * 1000)
                    else:
                        errors.append(f"{answer.status_code} {answer.text[:100]}")

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    wall = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "errors": len(errors),
        "first_errors": errors[:3],
        "seconds": wall,
        "per_second": len(latencies) / wall,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
    }


class Churn:
    """Registrations and withdrawals on worker A while the load runs; watched on worker B."""

    def __init__(self, a: Worker, b: Worker, registrar: str, platform: str, photos: list) -> None:
        self.a, self.b = a, b
        self.registrar = {"Authorization": f"Bearer {registrar}"}
        self.platform = {"Authorization": f"Bearer {platform}"}
        self.photos = photos  # (name, cfsig bytes) of photos nobody registered
        self.kept: list[tuple[str, bytes]] = []
        self.withdrawn: list[tuple[str, bytes]] = []
        self.to_index: list[float] = []  # registration answered -> in worker B's index
        self.to_match: list[float] = []  # ... -> a match request to B finds it (incl. queueing)
        self.match_tries: list[int] = []  # match requests to B until one found it (1: the first)
        self.to_unindex: list[float] = []
        self.to_unmatch: list[float] = []
        self.unmatch_tries: list[int] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def matches(self, worker: Worker, data: bytes) -> int:
        answer = httpx.post(
            f"{worker.url}/match/signatures", headers=self.platform,
            files={"file": ("q.cfsig", data)}, timeout=120,
        )  # fmt: skip
        answer.raise_for_status()
        return len(answer.json()["results"][0]["matches"])

    def indexed(self, worker: Worker) -> int:
        return httpx.get(f"{worker.url}/health", timeout=120).json()["photos"]

    def _until(self, check, started: float) -> tuple[float, int] | None:
        """(seconds since ``started``, calls of ``check``) when it first holds; None past 60 s."""
        tries = 0
        while time.perf_counter() - started < 60:
            tries += 1
            if check():
                return time.perf_counter() - started, tries
            time.sleep(0.01)
        return None

    def _run(self) -> None:
        for number, (name, data) in enumerate(self.photos):
            if self._stop.is_set():
                return
            try:
                self._register_and_withdraw(number % 2 == 1, name, data)
            except httpx.HTTPError as error:  # e.g. a 503 past the service's timeout
                self.failures.append(f"{name}: {error}")

    def _register_and_withdraw(self, keep: bool, name: str, data: bytes) -> None:
        subject = f"churn-{name}"
        with httpx.Client(base_url=self.a.url, headers=self.registrar, timeout=120) as a:
            a.post("/subjects", json={"name": subject}).raise_for_status()
            before = self.indexed(self.b)
            a.post(
                f"/subjects/{subject}/signatures", files={"file": ("p.cfsig", data)}
            ).raise_for_status()
            registered = time.perf_counter()
            applied = self._until(lambda: self.indexed(self.b) > before, registered)
            matched = self._until(lambda: self.matches(self.b, data) > 0, registered)
            if applied is None or matched is None:
                self.failures.append(f"{name}: never matchable on worker B")
                return
            self.to_index.append(applied[0])
            self.to_match.append(matched[0])
            self.match_tries.append(matched[1])
            if keep:
                self.kept.append((name, data))
                return
            before = self.indexed(self.b)
            a.delete(f"/subjects/{subject}").raise_for_status()
            withdrawn = time.perf_counter()
            applied = self._until(lambda: self.indexed(self.b) < before, withdrawn)
            unmatched = self._until(lambda: self.matches(self.b, data) == 0, withdrawn)
            if applied is None or unmatched is None:
                self.failures.append(f"{name}: still matching on worker B")
            else:
                self.to_unindex.append(applied[0])
                self.to_unmatch.append(unmatched[0])
                self.unmatch_tries.append(unmatched[1])
            self.withdrawn.append((name, data))

    def start(self) -> None:
        self._thread.start()

    def run_here(self) -> None:
        """Register and withdraw every photo in this thread (the idle measurement)."""
        self._run()

    def stop(self) -> dict:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        lost = [
            n for n, d in self.kept if not (self.matches(self.a, d) and self.matches(self.b, d))
        ]
        left = [n for n, d in self.withdrawn if self.matches(self.a, d) or self.matches(self.b, d)]
        return {
            "registered": len(self.kept) + len(self.withdrawn),
            "withdrawn": len(self.withdrawn),
            "lost": lost,
            "left_matching": left,
            "failures": self.failures,
            "indexed_on_other_worker_p50_s": percentile(self.to_index, 50),
            "indexed_on_other_worker_max_s": max(self.to_index, default=float("nan")),
            "matchable_on_other_worker_p50_s": percentile(self.to_match, 50),
            "matchable_on_other_worker_max_s": max(self.to_match, default=float("nan")),
            "found_by_first_match_request": self.match_tries.count(1),
            "gone_for_first_match_request": self.unmatch_tries.count(1),
            "dropped_on_other_worker_max_s": max(self.to_unindex, default=float("nan")),
            "unmatched_on_other_worker_max_s": max(self.to_unmatch, default=float("nan")),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=Path, default=Path("bench/out/cases"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000])
    parser.add_argument("--out", type=Path, default=Path("bench/out/service_load"))
    parser.add_argument("--image-requests", type=int, default=320)
    parser.add_argument("--signature-requests", type=int, default=3200)
    parser.add_argument("--phase-seconds", type=float, default=120)
    parser.add_argument("--single-requests", type=int, default=200)
    parser.add_argument("--churn-photos", type=int, default=45)
    parser.add_argument(
        "--warm-up", type=int, default=100,
        help="signature matches of other cases each worker answers, untimed, after it starts",
    )  # fmt: skip
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    db = str(args.out / "registry.db")
    for stale in Path(args.out).glob("registry.db*"):
        stale.unlink()

    manifest = json.loads((args.cases / "manifest.json").read_text())
    registered = [s for s in manifest["sources"] if s["registered"]]
    unregistered = [s for s in manifest["sources"] if not s["registered"]]
    print("hashing the registered photos and the templates", file=sys.stderr, flush=True)
    real = [make_signature(load_image(s["path"]), s["path"], "0" * 64) for s in registered]
    templates = [make_signature(load_image(p), p, "0" * 64) for p in manifest["distractors"][:100]]
    rng = random.Random(20261130)
    cases = [c for c in manifest["cases"] if c["registered"]]
    picked = rng.sample(cases, 60 + args.warm_up)
    query_paths = [args.cases / c["path"] for c in picked[:60]]
    query_paths += [Path(p) for p in manifest["distractors"][-20:]]
    warm_up = [
        (
            "/match/signatures",
            cfsig.dumps([make_signature(load_image(path), path.name, "0" * 64)]),
            "w",
        )
        for path in (args.cases / c["path"] for c in picked[60:])
    ]
    images = [(p.name, p.read_bytes()) for p in query_paths]
    signatures = [
        (p.name, cfsig.dumps([make_signature(load_image(p), p.name, "0" * 64)]))
        for p in query_paths
    ]
    churn_photos = [
        (s["id"], cfsig.dumps([make_signature(load_image(s["path"]), s["id"], "0" * 64)]))
        for s in unregistered[: args.churn_photos]
    ]

    with connect(db) as database:
        keys = KeyStore(database)
        registrar = keys.create("registrar", HELPLINE)[1]
        platform = keys.create("platform", "bench-platform")[1]

    results = []
    for size in args.sizes:
        started = time.perf_counter()
        have = fill_registry(db, size, real, templates)
        fill_seconds = time.perf_counter() - started
        log = args.out / f"workers-{size}.log"
        a = start_worker(db, log)
        b = start_worker(db, log)
        rss = [a.rss_mb(), b.rss_mb()]
        try:
            load_phase([a, b], platform, warm_up * 2, args.phase_seconds, clients=2)
            image_requests = [
                ("/match/image", images[i % len(images)][1], images[i % len(images)][0])
                for i in range(args.image_requests)
            ]
            signature_requests = [
                ("/match/signatures", signatures[i % len(signatures)][1], f"q{i}.cfsig")
                for i in range(args.signature_requests)
            ]
            third = len(churn_photos) // 3
            churn = Churn(a, b, registrar, platform, churn_photos[:third])
            churn.run_here()
            churned_idle = churn.stop()
            single = load_phase(
                [a], platform, signature_requests[: args.single_requests], args.phase_seconds, 1
            )
            churn = Churn(a, b, registrar, platform, churn_photos[third : 2 * third])
            churn.start()
            image = load_phase([a, b], platform, image_requests, args.phase_seconds)
            churned_during_images = churn.stop()
            churn = Churn(a, b, registrar, platform, churn_photos[2 * third :])
            churn.start()
            signature = load_phase([a, b], platform, signature_requests, args.phase_seconds)
            churned_during_signatures = churn.stop()
            # The churn's kept photos stay registered; withdraw them so the next size starts
            # from synthetic + benchmark photos only.
            with httpx.Client(
                base_url=a.url, headers={"Authorization": f"Bearer {registrar}"}, timeout=300
            ) as http:
                for name, _ in churn_photos:
                    http.delete(f"/subjects/churn-{name}")
        finally:
            rss_after = [a.rss_mb(), b.rss_mb()]
            a.stop()
            b.stop()
        row = {
            "registered_photos": have,
            "fill_seconds": fill_seconds,
            "worker_start_seconds": [a.started_in, b.started_in],
            "worker_rss_mb_loaded": rss,
            "worker_rss_mb_after_load": rss_after,
            "signature_one_client": single,
            "image": image,
            "signature": signature,
            "churn_idle": churned_idle,
            "churn_during_images": churned_during_images,
            "churn_during_signatures": churned_during_signatures,
        }
        results.append(row)
        print(json.dumps(row), flush=True)
    if len(results) >= 2:
        low, high = results[0], results[-1]
        per_photo = (
            (high["worker_rss_mb_loaded"][0] - low["worker_rss_mb_loaded"][0])
            * 1024
            / (high["registered_photos"] - low["registered_photos"])
        )
        results.append({"rss_kb_per_photo": per_photo})
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    print(table(results))


def table(results: list[dict]) -> str:
    lines = [
        "| registered photos | kind | requests | errors | per second | p50 | p99 | worker RSS |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    churn_lines = [
        "| registered photos | while | registered / withdrawn | lost | left matching | "
        "in the other worker's index: p50 / max | a match there finds it: p50 / max | "
        "withdrawn there: index / match, max | the first match request there after the "
        "answer: found it / no longer found it |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results:
        if "registered_photos" not in row:
            continue
        rss = max(row["worker_rss_mb_after_load"])
        for kind in ("signature_one_client", "image", "signature"):
            r = row[kind]
            label = {"signature_one_client": "signature, 1 client"}.get(kind, f"{kind}, 32 clients")
            lines.append(
                f"| {row['registered_photos']:,} | {label} | {r['requests']} | {r['errors']} | "
                f"{r['per_second']:.1f} | {r['p50_ms']:.0f} ms | {r['p99_ms']:.0f} ms | "
                f"{rss / 1024:.2f} GB |"
            )
        for phase, label in (
            ("churn_idle", "idle"),
            ("churn_during_images", "image load"),
            ("churn_during_signatures", "signature load"),
        ):
            c = row[phase]
            churn_lines.append(
                f"| {row['registered_photos']:,} | {label} | {c['registered']} / "
                f"{c['withdrawn']} | {len(c['lost'])} | {len(c['left_matching'])} | "
                f"{c['indexed_on_other_worker_p50_s']:.2f} s / "
                f"{c['indexed_on_other_worker_max_s']:.2f} s | "
                f"{c['matchable_on_other_worker_p50_s']:.2f} s / "
                f"{c['matchable_on_other_worker_max_s']:.2f} s | "
                f"{c['dropped_on_other_worker_max_s']:.2f} s / "
                f"{c['unmatched_on_other_worker_max_s']:.2f} s | "
                f"{c['found_by_first_match_request']} of {c['registered']} / "
                f"{c['gone_for_first_match_request']} of {c['withdrawn']} |"
            )
    tail = [
        f"\nworker memory per registered photo: {r['rss_kb_per_photo']:.1f} KB"
        for r in results
        if "rss_kb_per_photo" in r
    ]
    return "\n".join([*lines, "", *churn_lines, *tail])


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
