"""Bytes a registered photo costs: in a SQLite registry and in a .cfsig file, on real photos.

    python -m bench.stored_size --data ../shared/data --name NAME

Registers every people photo (``people/NNNN.jpg``) under one subject in a fresh SQLite registry
and reports, per photo: the registry file's bytes (everything: the signature row, its PDQ rows,
the change feed, SQLite's pages and indexes; the write-ahead log checkpointed in), the signature
column's bytes (mean and largest: what verification reads in one indexed row), a .cfsig
file's bytes (all the signatures in one file, and the largest file of one signature), the
features a stored signature holds, and the default candidate index's arrays a photo. It uses
only what every version of counterfake offers (``hash_files``, ``Registry.register``,
``cfsig.dumps``), so the same command measures the code before a change and after it.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
from pathlib import Path

from bench.results import save
from counterfake.index.candidates import CandidateIndex
from counterfake.registry import Registry
from counterfake.scan import hash_files
from counterfake.signature import cfsig


def measure(data: Path, workers: int) -> dict:
    paths = sorted(str(p) for p in data.glob("people/[0-9][0-9][0-9][0-9].jpg"))
    signatures = [r.signature for r in hash_files(paths, workers=workers) if r.signature]
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "registry.db"
        with Registry(db) as registry:
            registry.register("alice", signatures)
        with sqlite3.connect(db) as connection:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            rows = [n for (n,) in connection.execute("SELECT length(signature) FROM photos")]
        connection.close()
        file_bytes = sum(p.stat().st_size for p in Path(folder).glob("registry.db*"))
        index = CandidateIndex()
        with Registry(db) as registry:
            stored = [signature for _, signature in registry.signatures()]
            for photo_id, signature in registry.signatures():
                index.add(photo_id, signature)
        features = [len(s.features) for s in stored]
        mirrored = [len(s.mirrored) for s in stored]
    one = [len(cfsig.dumps([s])) for s in signatures]
    photos = len(signatures)
    return {
        "photos": photos,
        "registry_file_bytes_a_photo": round(file_bytes / photos),
        "signature_row_bytes_mean": round(sum(rows) / photos),
        "signature_row_bytes_max": max(rows),
        "cfsig_bytes_a_photo": round(len(cfsig.dumps(signatures)) / photos),
        "cfsig_one_signature_bytes_max": max(one),
        "features_stored_mean": round(sum(features) / photos, 1),
        "features_stored_min": min(features),
        "mirrored_features_stored_mean": round(sum(mirrored) / photos, 1),
        "candidate_index_bytes_a_photo": round(index.nbytes / photos),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--name", help="save the run as bench/results/stored-size-NAME.json")
    args = parser.parse_args()
    figures = measure(args.data, args.workers)
    if args.name:
        save(f"stored-size-{args.name}", figures)
    for key, value in figures.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
