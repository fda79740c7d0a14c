"""The signature forms before issue 18's compact record, written as counterfake 0.1.0 at f7c74cf
wrote them: a .cfsig file of version 1 (or 2) whose header lists every array, the mirror image's
features included, and a registry of schema version 2 (or 1) whose rows hold such a file each.
Tests build old files and registries with these, to check that they are read, refused or
migrated as documented."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

from counterfake.db import connect
from counterfake.registry_tables import SCHEMA
from counterfake.signature import cfsig
from counterfake.signature.extract import Signature

_FIELDS = ("xy", "size", "angle", "octave", "descriptors")


def old_dumps(signatures: list[Signature], version: int = 1) -> bytes:
    """The bytes of a version-1 (or -2, same layout without videos) .cfsig file."""
    payload = bytearray()
    entries = []

    def put(array: np.ndarray) -> list[Any]:
        array = np.ascontiguousarray(array)
        offset = len(payload)
        payload.extend(array.tobytes())
        return [offset, str(array.dtype), list(array.shape)]

    for sig in signatures:
        arrays = {"grid": put(sig.grid), "face": put(sig.face)}
        for side, features in (("features", sig.features), ("mirrored", sig.mirrored)):
            for field in _FIELDS:
                arrays[f"{side}.{field}"] = put(getattr(features, field))
        entries.append(
            {
                "label": sig.label,
                "sha256": sig.sha256,
                "size": [sig.width, sig.height],
                "frame": [sig.frame_width, sig.frame_height],
                "pdq": {name: h.hex() for name, h in sig.pdq.items()},
                "pdq_quality": sig.pdq["original"].quality,
                "arrays": arrays,
            }
        )
    header = {
        "format": cfsig.FORMAT_NAME,
        "version": version,
        "tool": "counterfake 0.1.0",
        "parameters": cfsig.PARAMETERS,
        "signatures": entries,
    }
    header_bytes = json.dumps(header, separators=(",", ":")).encode()
    body = cfsig.MAGIC + struct.pack("<I", len(header_bytes)) + header_bytes + bytes(payload)
    return body + hashlib.sha256(body).digest()


def old_registry_rows(
    execute: Any, signatures: list[Signature], version: int = 2, subject: str = "alice"
) -> None:
    """Fill an old registry's tables (already made) through ``execute(sql, params)``: one
    subject, a row per signature holding its old .cfsig bytes, and its PDQ rows (version 2)."""
    execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(version),))
    execute("INSERT INTO subjects (name, created) VALUES (?, '2026-01-01')", (subject,))
    for number, sig in enumerate(signatures, 1):
        execute(
            "INSERT INTO photos (subject_id, label, sha256, signature, created) "
            "VALUES (1, ?, ?, ?, '2026-01-01')",
            (sig.label, sig.sha256, old_dumps([sig])),
        )
        execute(
            "INSERT INTO changes (action, photo_id, created) VALUES ('add', ?, '2026-01-01')",
            (number,),
        )
        if version == 2:
            for orientation, pdq in sig.pdq.items():
                execute(
                    "INSERT INTO photo_pdq (photo_id, orientation, hash, quality) "
                    "VALUES (?, ?, ?, ?)",
                    (number, orientation, pdq.hex(), pdq.quality),
                )


def old_registry(
    target: str | Path, signatures: list[Signature], version: int = 2, subject: str = "alice"
) -> str:
    """A registry (SQLite file or PostgreSQL URL) of schema version 2 (or 1) holding
    ``signatures`` under one subject. Version 2's tables are today's (only what a signature
    row holds changed); version 1 had no photo_pdq table."""
    with connect(str(target)) as db:
        db.ensure_schema(SCHEMA)
        if version == 1:
            db.execute("DROP TABLE photo_pdq")
        with db.transaction() as tx:
            old_registry_rows(tx.execute, signatures, version, subject)
    return str(target)
