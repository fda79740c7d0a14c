"""``counterfake registry migrate``: rewrite a registry of an older schema into the current one.

Schema versions 1 and 2 stored each photo's signature as a .cfsig file of one signature: the
features of the photo and of its mirror image, float32 keypoints, the grid uncompressed, a JSON
header: about 61 kB a photo. Version 3 stores its compact record (signature/record.py), about
24 kB. A registry of an older version is refused until it is migrated (registry.py), rather than
read as it is, which would keep it at 61 kB a photo.

The migration reads each old signature with the .cfsig reader (which still reads those files),
writes its record, adds the PDQ table's rows that version 1 lacked, and stamps the version, all
in one transaction: a failure (a damaged row, a full disk, Ctrl-C) leaves the registry exactly
as it was, still refused and still migratable. A registry already at the current version is
left alone. Afterwards the file's freed space is given back (SQLite's VACUUM; PostgreSQL's
VACUUM of the photos table); the migration is committed by then, so a failure there loses
nothing either. Photo ids do not change, so matches and evidence recorded earlier still name
the right photos; a packed index file (index/packed.py) records the index layout, which changed
with it (one orientation), so an old one is rebuilt, never read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from counterfake.db import (
    Database,
    DatabaseError,
    connect,
    display_name,
    engine_errors,
    is_postgres_url,
)
from counterfake.registered import RegistryError
from counterfake.registry_tables import OLD_SCHEMA_VERSIONS, SCHEMA, SCHEMA_VERSION, WRITE_LOCK
from counterfake.signature import cfsig, record
from counterfake.signature.extract import Signature

_PAGE = 200  # rows read at a time


@dataclass(frozen=True)
class Migrated:
    """What a migration did: the version it found and how many signatures it rewrote."""

    name: str
    old_version: str
    photos: int
    bytes_before: int
    bytes_after: int

    @property
    def done_before(self) -> bool:
        return self.old_version == str(SCHEMA_VERSION)


def migrate(target: str | os.PathLike) -> Migrated:
    """Migrate the registry at ``target`` (a SQLite file or a PostgreSQL URL) in one
    transaction; RegistryError (one line naming it) if it cannot be."""
    path = os.fspath(target)
    name = display_name(path) if is_postgres_url(path) else path
    if not is_postgres_url(path) and not Path(path).is_file():
        raise RegistryError(f"{name}: no such registry file")
    try:
        db = connect(path)
    except DatabaseError as error:
        raise RegistryError(
            f"{name}: not a usable counterfake registry ({error.problem})"
        ) from None
    try:
        return _migrate(db, name)
    except DatabaseError as error:
        raise RegistryError(f"{name}: {error.problem}") from None
    finally:
        db.close()


def _migrate(db: Database, name: str) -> Migrated:
    version = _version(db, name)
    if version == str(SCHEMA_VERSION):
        return Migrated(name, version, 0, 0, 0)
    if version not in OLD_SCHEMA_VERSIONS:
        raise RegistryError(f"{name}: registry schema version {version} cannot be migrated")
    db.ensure_schema(SCHEMA)  # version 1 lacks the photo_pdq table
    photos = before = after = 0
    with db.transaction() as tx:
        tx.lock(WRITE_LOCK)
        row = tx.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row[0] == str(SCHEMA_VERSION):  # another migration finished meanwhile
            return Migrated(name, row[0], 0, 0, 0)
        last = 0
        while rows := tx.execute(
            "SELECT id, signature FROM photos WHERE id > ? ORDER BY id LIMIT ?", (last, _PAGE)
        ).fetchall():
            for photo_id, blob in rows:
                new, old = _converted(name, photo_id, bytes(blob))
                tx.execute("UPDATE photos SET signature = ? WHERE id = ?", (new, photo_id))
                if version == "1":
                    for orientation, pdq in old.pdq.items():
                        tx.execute(
                            "INSERT INTO photo_pdq (photo_id, orientation, hash, quality) "
                            "VALUES (?, ?, ?, ?)",
                            (photo_id, orientation, pdq.hex(), pdq.quality),
                        )
                photos += 1
                before += len(blob)
                after += len(new)
            last = rows[-1][0]
        tx.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
    if db.backend == "sqlite":
        db.execute("VACUUM")
    else:
        db.purge(["photos"])
    return Migrated(name, version, photos, before, after)


def _converted(name: str, photo_id: int, blob: bytes) -> tuple[bytes, Signature]:
    """An old row's record and its signature; RegistryError if the row cannot be read (the
    transaction then rolls back: nothing is migrated, nothing lost)."""
    try:
        old = cfsig.loads(blob, f"{name} photo {photo_id}")[0]
        return record.encode(old), old
    except cfsig.SignatureFileError as error:
        raise RegistryError(f"{error}; nothing was migrated") from None
    except (ValueError, IndexError) as error:
        raise RegistryError(f"{name} photo {photo_id}: {error}; nothing was migrated") from None


def _version(db: Database, name: str) -> str:
    try:
        rows = db.execute("SELECT value FROM meta WHERE key = 'schema_version'")
    except engine_errors() as error:  # no meta table: not a registry
        problem = " ".join(str(error).split())
        raise RegistryError(f"{name}: not a counterfake registry ({problem})") from None
    if not rows:
        raise RegistryError(f"{name}: not a counterfake registry (no schema version)")
    return str(rows[0][0])
