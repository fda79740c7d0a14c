"""Crowding: candidate recall and match time when 1% of the photos are registered 200 times.

    python -m bench.duplicates --size 100000 --mode shared     # index/owners.py's shared entries
    python -m bench.duplicates --size 100000 --mode plain      # every registration its own entry

A photo registered by many (a viral photo, several helplines registering one picture) must still
reach every subject holding it, and must not crowd other photos out of the candidate index. The
registry is bench/speed.py's synthetic one (real people photos first, synthetic filler after);
the first 1% of its photos are registered ``--copies`` times. Queries are a resized JPEG repost
and a blurred-region edit of each real photo. Reported: whether the photo was shortlisted,
whether its first registrant and every registration were reported, CPU time per match. The run
is saved as bench/results/duplicates-MODE-SIZE.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import time
from pathlib import Path

import cv2
import numpy as np

from bench.results import save
from bench.speed import SyntheticRegistry
from counterfake.duplicates import same_photo
from counterfake.imaging import load_image
from counterfake.index.candidates import CandidateIndex
from counterfake.index.owners import SharedEntries
from counterfake.matching import Matcher, Thresholds
from counterfake.signature.extract import make_query, make_signature
from counterfake.signature.pdq import PdqHash

COPIES = 200


def cpu() -> float:
    return time.process_time()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--mode", choices=["shared", "plain"], default="shared")
    parser.add_argument("--real", type=int, default=100)
    parser.add_argument("--copies", type=int, default=COPIES, help="registrations of each of 1%")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    people = sorted(args.data.glob("people/[0-9][0-9][0-9][0-9].jpg"))[: args.real]
    images = {i + 1: load_image(p) for i, p in enumerate(people)}
    real = {i: make_signature(rgb, f"real-{i}", "0" * 64) for i, rgb in images.items()}
    templates = [
        make_signature(load_image(p), str(p), "0" * 64)
        for p in sorted(args.data.glob("distractors/*.jpg"))[:300]
    ]
    synthetic = SyntheticRegistry(real, templates)
    duplicated = list(range(1, args.size // 100 + 1))  # 1%: the real photos first
    source: dict[int, int] = {}  # copy id -> the photo it copies
    next_id = args.size + 1
    for photo_id in duplicated:
        for _ in range(args.copies - 1):
            source[next_id] = photo_id
            next_id += 1

    def signature_of(photo_id: int):
        """A copy is its source's signature; a synthetic photo gets a PDQ hash of its own
        (SyntheticRegistry keeps its template's, which would make 33 photos a PDQ twin)."""
        photo = source.get(photo_id, photo_id)
        signature = synthetic(photo)
        if photo in real:
            return signature
        bits = np.random.default_rng(photo).bytes(32)
        pdq = {"original": PdqHash(bits, 100)}
        return dataclasses.replace(signature, pdq=pdq)

    index = CandidateIndex()
    entries = SharedEntries(index, same_photo) if args.mode == "shared" else None

    def register(photo_id: int, signature) -> None:
        if entries is not None:
            entries.add(photo_id, signature, signature_of)
        else:
            index.add(photo_id, signature)

    started = time.perf_counter()
    registrations = 0
    for photo_id in range(1, args.size + 1):
        signature = signature_of(photo_id)
        register(photo_id, signature)
        registrations += 1
    for copy_id in source:
        register(copy_id, signature_of(copy_id))
        registrations += 1
    index.prepare()
    fill = time.perf_counter() - started
    owners_of = {p: [p] for p in duplicated}
    for copy_id, photo_id in source.items():
        owners_of[photo_id].append(copy_id)

    queries, wanted = [], []
    for photo_id, rgb in images.items():
        small = cv2.resize(rgb, None, fx=0.8, fy=0.8, interpolation=cv2.INTER_AREA)
        _, data = cv2.imencode(".jpg", small[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 70])
        repost = cv2.imdecode(data, cv2.IMREAD_COLOR)[:, :, ::-1].copy()
        edited = rgb.copy()
        h, w = edited.shape[:2]
        box = (slice(h // 3, 2 * h // 3), slice(w // 4, 3 * w // 4))
        edited[box] = cv2.GaussianBlur(rgb, (0, 0), 20)[box]
        for image in (repost, edited):
            queries.append(make_query(image))
            wanted.append(photo_id)
    t = Thresholds()
    matcher = Matcher(index, signature_of, t)
    matcher.match(queries[0])
    shortlisted, complete, first_found, times = [], [], [], []
    for query, photo_id in zip(queries, wanted, strict=True):
        want = set(owners_of.get(photo_id, [photo_id]))
        shortlist = {
            c.photo_id
            for c in index.candidates(query.features.descriptors, t.candidates)
            if c.votes >= t.min_votes
        }
        began = cpu()
        matches = matcher.match(query)
        reported = {
            owner
            for m in matches
            for owner in (entries.owners(m.photo_id) if entries is not None else [m.photo_id])
        }
        times.append((cpu() - began) * 1000)
        shortlisted.append(bool(shortlist & want))
        first_found.append(photo_id in reported)  # the first registrant of the photo
        complete.append(want <= reported)
    row = {
        "mode": args.mode,
        "distinct_photos": args.size,
        "registrations": registrations,
        "index_entries": entries.entries if entries is not None else len(index),
        "queries": len(queries),
        "candidate_recall": float(np.mean(shortlisted)),
        "first_registrant_reported": float(np.mean(first_found)),
        "every_registration_reported": float(np.mean(complete)),
        "cpu_p50_ms": float(np.percentile(times, 50)),
        "cpu_p99_ms": float(np.percentile(times, 99)),
        "fill_seconds": fill,
        "max_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
    }
    print(json.dumps(row), flush=True)
    print(save(f"duplicates-{args.mode}-{args.size}", row))


if __name__ == "__main__":
    main()
