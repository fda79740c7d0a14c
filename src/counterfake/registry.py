"""The registry of record: subjects and the signatures of their photos, in one SQLite file.

A registered photo is stored as its signature and its label, never as pixels. Every change is
one transaction, so an interrupted run (Ctrl-C, a killed process, a full disk) leaves the
registry as it was before that change. The file is opened in WAL mode, so a scan can read while a
registration writes.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from counterfake.signature import cfsig
from counterfake.signature.extract import Signature

DEFAULT_DB = "counterfake.db"
SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS subjects (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS photos (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subject_id INTEGER NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    label TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    signature BLOB NOT NULL,
    created TEXT NOT NULL,
    UNIQUE (subject_id, sha256)
);
"""


class RegistryError(Exception):
    """The registry file cannot be used; the message is one line naming the file."""


@dataclass(frozen=True)
class RegisteredPhoto:
    photo_id: int
    subject: str
    label: str
    sha256: str


def default_db_path() -> str:
    """``$COUNTERFAKE_DB`` if set, else ./counterfake.db."""
    return os.environ.get("COUNTERFAKE_DB") or DEFAULT_DB


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Registry:
    """Subjects and photo signatures in a SQLite file."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = str(path)
        if Path(self.path).is_dir():
            raise RegistryError(f"{self.path}: is a directory, not a registry file")
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA)
            with self._transaction():
                self._check_schema()
        except sqlite3.DatabaseError as error:
            raise RegistryError(
                f"{self.path}: not a usable counterfake registry ({error})"
            ) from None

    def _transaction(self) -> sqlite3.Connection:
        """A context manager running its block as one transaction (BEGIN IMMEDIATE ... COMMIT)."""
        return _Transaction(self._db)

    def _check_schema(self) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
        elif row[0] != str(SCHEMA_VERSION):
            raise RegistryError(
                f"{self.path}: registry schema version {row[0]} is not supported "
                f"(this tool uses {SCHEMA_VERSION})"
            )

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def register(self, subject: str, signatures: Iterable[Signature]) -> tuple[int, int]:
        """Register signatures under a subject in one transaction; return (added, already there).

        A photo whose file (by SHA-256) is already registered for the subject is not added twice.
        """
        added = existing = 0
        with self._transaction():
            subject_id = self._subject_id(subject, create=True)
            for signature in signatures:
                cursor = self._db.execute(
                    "INSERT OR IGNORE INTO photos (subject_id, label, sha256, signature, created) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (
                        subject_id,
                        signature.label,
                        signature.sha256,
                        cfsig.dumps([signature]),
                        _now(),
                    ),
                )
                if cursor.rowcount:
                    added += 1
                else:
                    existing += 1
        return added, existing

    def withdraw(self, subject: str) -> int:
        """Delete a subject and all its signatures (deleted, not hidden); return how many photos."""
        with self._transaction():
            subject_id = self._subject_id(subject, create=False)
            if subject_id is None:
                return 0
            count = self._db.execute(
                "SELECT COUNT(*) FROM photos WHERE subject_id = ?", (subject_id,)
            ).fetchone()[0]
            self._db.execute("DELETE FROM photos WHERE subject_id = ?", (subject_id,))
            self._db.execute("DELETE FROM subjects WHERE id = ?", (subject_id,))
        return count

    def _subject_id(self, name: str, *, create: bool) -> int | None:
        row = self._db.execute("SELECT id FROM subjects WHERE name = ?", (name,)).fetchone()
        if row is not None:
            return row[0]
        if not create:
            return None
        return self._db.execute(
            "INSERT INTO subjects (name, created) VALUES (?, ?)", (name, _now())
        ).lastrowid

    def photos(self) -> Iterator[RegisteredPhoto]:
        """Every registered photo, in registration order."""
        rows = self._db.execute(
            "SELECT p.id, s.name, p.label, p.sha256 FROM photos p "
            "JOIN subjects s ON s.id = p.subject_id ORDER BY p.id"
        )
        for row in rows:
            yield RegisteredPhoto(*row)

    def signatures(self) -> Iterator[tuple[int, Signature]]:
        """Every (photo id, signature), streamed so a large registry is never all in memory."""
        for photo_id, blob in self._db.execute("SELECT id, signature FROM photos ORDER BY id"):
            yield photo_id, self._decode(photo_id, blob)

    def signature(self, photo_id: int) -> Signature:
        row = self._db.execute("SELECT signature FROM photos WHERE id = ?", (photo_id,)).fetchone()
        if row is None:
            raise KeyError(photo_id)
        return self._decode(photo_id, row[0])

    def photo(self, photo_id: int) -> RegisteredPhoto:
        row = self._db.execute(
            "SELECT p.id, s.name, p.label, p.sha256 FROM photos p "
            "JOIN subjects s ON s.id = p.subject_id WHERE p.id = ?",
            (photo_id,),
        ).fetchone()
        if row is None:
            raise KeyError(photo_id)
        return RegisteredPhoto(*row)

    def subjects(self) -> list[tuple[str, int]]:
        """(subject, number of photos) for every subject."""
        return self._db.execute(
            "SELECT s.name, COUNT(p.id) FROM subjects s LEFT JOIN photos p ON p.subject_id = s.id "
            "GROUP BY s.id ORDER BY s.name"
        ).fetchall()

    def _decode(self, photo_id: int, blob: bytes) -> Signature:
        return cfsig.loads(blob, f"{self.path} photo {photo_id}")[0]


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> sqlite3.Connection:
        self._db.execute("BEGIN IMMEDIATE")
        return self._db

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
