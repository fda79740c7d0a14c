"""The registry of record (over 600 lines on purpose, see below): subjects, the signatures of
their photos and videos, and imported PDQ hashes.

One SQLite file by default, or a PostgreSQL database (``postgresql://`` URL) that many matching
workers share (see db.py). A registered photo is stored as its signature and its label, never as
pixels. Every change is one transaction, so an interrupted run (Ctrl-C, a killed process, a full
disk) leaves the registry as it was before that change.

Workers follow the registry through its change feed: each registration or withdrawal appends
numbered ``changes`` rows in the same transaction as the rows it writes or deletes, and, on
PostgreSQL, NOTIFYs ``counterfake_registry`` on commit. A worker loads the registry once
(after reading :meth:`Registry.head_seq`), then applies :meth:`Registry.changes_since` whenever
:meth:`Registry.wait_for_change` says something happened. Applying a change twice is harmless.

Why this module is over 600 lines: it is the one class that owns the registry's tables and
their transactions (subjects, photos, videos and their frames, imported PDQ and vPDQ, the
change feed); a registration or withdrawal of photos and videos is one transaction over all of
them, and splitting the class would split what must commit together.
"""

from __future__ import annotations

import os
import time
import unicodedata
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from counterfake.db import (
    Database,
    DatabaseError,
    Listener,
    PostgresDatabase,
    Transaction,
    connect,
    display_name,
    engine_errors,
    is_postgres_url,
)
from counterfake.exchange import PdqRecord, PdqRow
from counterfake.signature import cfsig
from counterfake.signature.extract import Signature
from counterfake.signature.pdq import PdqHash

if TYPE_CHECKING:
    from counterfake.video.exchange import VpdqRecord
    from counterfake.video.signature import VideoSignature

DEFAULT_DB = "counterfake.db"
SCHEMA_VERSION = 2
CHANGES_CHANNEL = "counterfake_registry"
_WRITE_LOCK = 0x6366_0002  # serialises registry writers so change numbers commit in order
WITHDRAWN_TABLES = (
    "photos",
    "photo_pdq",
    "video_frames",
    "videos",
    "subjects",
)  # what a withdrawal deletes from
_PAGE = 500  # rows per query when streaming signatures
_POLL_SECONDS = 0.05  # how often SQLite's wait_for_change looks for new changes
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS subjects (
        id {SERIAL_PK},
        name TEXT NOT NULL UNIQUE,
        created TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS photos (
        id {SERIAL_PK},
        subject_id BIGINT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
        label TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        signature {BLOB} NOT NULL,
        created TEXT NOT NULL,
        UNIQUE (subject_id, sha256)
    )""",
    # The photo's PDQ hashes (all eight orientations), kept beside the signature so that the
    # hash exchange never has to decode every signature.
    """CREATE TABLE IF NOT EXISTS photo_pdq (
        photo_id BIGINT NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
        orientation TEXT NOT NULL,
        hash TEXT NOT NULL,
        quality INTEGER NOT NULL,
        PRIMARY KEY (photo_id, orientation)
    )""",
    """CREATE TABLE IF NOT EXISTS imported_pdq (
        id {SERIAL_PK},
        source TEXT NOT NULL,
        hash TEXT NOT NULL,
        quality INTEGER,
        ref TEXT,
        created TEXT NOT NULL,
        UNIQUE (source, hash)
    )""",
    # A registered video: its sampled frames are rows of photos (their signatures, matched as
    # photos are), tied to it with their times by video_frames; vPDQ as Meta's hash-file lines.
    """CREATE TABLE IF NOT EXISTS videos (
        id {SERIAL_PK},
        subject_id BIGINT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
        label TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        md5 TEXT NOT NULL,
        duration DOUBLE PRECISION NOT NULL,
        vpdq TEXT NOT NULL,
        created TEXT NOT NULL,
        UNIQUE (subject_id, sha256)
    )""",
    """CREATE TABLE IF NOT EXISTS video_frames (
        photo_id BIGINT PRIMARY KEY REFERENCES photos(id) ON DELETE CASCADE,
        video_id BIGINT NOT NULL REFERENCES videos(id) ON DELETE CASCADE,
        time DOUBLE PRECISION NOT NULL
    )""",
    # vPDQ signals imported from a hash-sharing programme, named by the SHA-256 of the signal.
    """CREATE TABLE IF NOT EXISTS imported_vpdq (
        id {SERIAL_PK},
        source TEXT NOT NULL,
        digest TEXT NOT NULL,
        signal TEXT NOT NULL,
        ref TEXT,
        created TEXT NOT NULL,
        UNIQUE (source, digest)
    )""",
    """CREATE TABLE IF NOT EXISTS changes (
        seq {SERIAL_PK},
        action TEXT NOT NULL,
        photo_id BIGINT NOT NULL,
        created TEXT NOT NULL
    )""",
)


class RegistryError(Exception):
    """The registry cannot be used; the message is one line naming the file or database."""


class SubjectFull(Exception):
    """A registration would take a subject past the most photos allowed it."""


@dataclass(frozen=True)
class RegisteredPhoto:
    photo_id: int
    subject: str
    label: str
    sha256: str


@dataclass(frozen=True)
class RegisteredVideo:
    video_id: int
    subject: str
    label: str
    sha256: str
    md5: str
    duration: float


@dataclass(frozen=True)
class VideoFrame:
    """A registered photo that is a sampled frame of a registered video."""

    video_id: int
    time: float


@dataclass(frozen=True)
class Change:
    """One entry of the change feed.

    ``add`` and ``remove`` name a registered photo; ``import`` and ``unimport`` (its sharer
    withdrew it) name a row of imported PDQ hashes: ``photo_id`` is then that row's id, see
    :meth:`Registry.imported_pdq`.
    """

    seq: int
    action: Literal["add", "remove", "import", "unimport"]
    photo_id: int


def default_db_path() -> str:
    """``$COUNTERFAKE_DB`` if set, else ./counterfake.db."""
    return os.environ.get("COUNTERFAKE_DB") or DEFAULT_DB


def registry_exists(target: str) -> bool:
    """A PostgreSQL URL is taken to exist (connecting tells); a file must be there."""
    return is_postgres_url(target) or Path(target).exists()


MAX_SUBJECT = 200  # characters of a subject's name


def check_subject_name(name: object) -> str:
    """A subject's name as a person or a helpline gives it: 1 to MAX_SUBJECT printable
    characters, no ``/`` (the service scopes names with it) and not ``.`` or ``..`` (a path
    segment that clients resolve away). The one check the CLI and the service apply; raises
    ValueError saying what a name must be."""
    if (
        not isinstance(name, str)
        or not 1 <= len(name) <= MAX_SUBJECT
        or name in (".", "..")
        or "/" in name
        or any(unicodedata.category(char) in ("Cc", "Cf", "Cs", "Zl", "Zp") for char in name)
    ):
        raise ValueError(
            f"a subject name is 1-{MAX_SUBJECT} printable characters, without '/', "
            "and not '.' or '..'"
        )
    return name


def _prefixed(column: str, prefix: str | None) -> tuple[str, tuple]:
    """A condition that ``column`` begins with ``prefix`` (none if None), and its parameters.

    Compared with ``substr``, not ``LIKE``: a prefix may hold ``%`` and ``_``."""
    if prefix is None:
        return "", ()
    return f" AND substr({column}, 1, ?) = ?", (len(prefix), prefix)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Registry:
    """Subjects, photo signatures and imported PDQ hashes in a SQLite file or PostgreSQL."""

    def __init__(self, target: str | os.PathLike) -> None:
        self.path = os.fspath(target)
        self.name = display_name(self.path) if is_postgres_url(self.path) else self.path
        if not is_postgres_url(self.path) and Path(self.path).is_dir():
            raise RegistryError(f"{self.path}: is a directory, not a registry file")
        self._listener: Listener | None = None
        self._seen_seq: int | None = None
        try:
            self.db: Database = connect(self.path)
        except DatabaseError as error:
            raise RegistryError(
                f"{self.name}: not a usable counterfake registry ({error.problem})"
            ) from None
        try:
            self.db.ensure_schema(_SCHEMA)
            with self.db.transaction() as tx:
                self._check_schema(tx)
        except (RegistryError, *engine_errors()) as error:  # type: ignore[misc]  # mypy#12100
            self.db.close()
            if isinstance(error, RegistryError):
                raise
            problem = " ".join(str(error).split())
            raise RegistryError(
                f"{self.name}: not a usable counterfake registry ({problem})"
            ) from None

    def _check_schema(self, tx: Transaction) -> None:
        """Stamp a new registry, bring a version-1 one up to date, refuse any other version.

        Only the upgrade waits for running writers: opening a registry while a long import
        runs must not.
        """
        version = "SELECT value FROM meta WHERE key = 'schema_version'"
        row = tx.execute(version).fetchone()
        if row is None:
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                "ON CONFLICT (key) DO NOTHING",
                (str(SCHEMA_VERSION),),
            )
        elif row[0] == "1":
            tx.lock(_WRITE_LOCK)
            if tx.execute(version).fetchone()[0] == "1":  # nobody upgraded it meanwhile
                self._add_photo_pdq(tx)
        elif row[0] != str(SCHEMA_VERSION):
            raise RegistryError(
                f"{self.name}: registry schema version {row[0]} is not supported "
                f"(this tool uses {SCHEMA_VERSION})"
            )

    def _add_photo_pdq(self, tx: Transaction) -> None:
        """Version 1 kept PDQ only inside each signature: copy it out once."""
        for photo_id, blob in tx.execute("SELECT id, signature FROM photos").fetchall():
            self._insert_pdq(tx, photo_id, self._decode(photo_id, blob))
        tx.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self.db.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- writing -------------------------------------------------------------------------

    def register(
        self, subject: str, signatures: Iterable[Signature], max_photos: int | None = None
    ) -> tuple[int, int]:
        """Register signatures under a subject in one transaction; return (added, already there).

        A photo whose file (by SHA-256) is already registered for the subject is not added twice.
        With ``max_photos``, a registration that would leave the subject holding more photos
        raises SubjectFull and adds nothing (checked under the write lock, so two uploads at
        once cannot both slip under it).
        """
        signatures = list(signatures)
        for number, signature in enumerate(signatures, 1):
            try:
                cfsig.check_signature(signature)
            except ValueError as error:
                raise cfsig.SignatureFileError(
                    f"signature {number} for {subject}", str(error)
                ) from None
        added = existing = 0
        with self.db.transaction() as tx:
            tx.lock(_WRITE_LOCK)
            tx.execute(
                "INSERT INTO subjects (name, created) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                (subject, _now()),
            )
            subject_id = self._subject_id(tx, subject)
            for signature in signatures:
                row = tx.execute(
                    "INSERT INTO photos (subject_id, label, sha256, signature, created) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (subject_id, sha256) DO NOTHING "
                    "RETURNING id",
                    (
                        subject_id,
                        signature.label,
                        signature.sha256,
                        cfsig.dumps([signature]),
                        _now(),
                    ),
                ).fetchone()
                if row is None:
                    existing += 1
                    continue
                added += 1
                self._insert_pdq(tx, row[0], signature)
                self._record_change(tx, "add", row[0])
            if max_photos is not None and added:
                (held,) = tx.execute(
                    "SELECT COUNT(*) FROM photos WHERE subject_id = ?", (subject_id,)
                ).fetchone()
                if held > max_photos:
                    raise SubjectFull(f"{held} photos for one subject; the limit is {max_photos}")
            if added:
                tx.notify(CHANGES_CHANNEL, "add")
        return added, existing

    def register_video(
        self, subject: str, video: VideoSignature, max_photos: int | None = None
    ) -> bool:
        """Register a video under a subject in one transaction: its frames as photos (the
        change feed and the index see them as photos) and the video with its frames' times.
        False if the subject already holds this video (by SHA-256); nothing is added then.
        With ``max_photos``, SubjectFull if its frames would take the subject past it."""
        for number, signature in enumerate(video.frames, 1):
            try:
                cfsig.check_signature(signature)
            except ValueError as error:
                raise cfsig.SignatureFileError(
                    f"frame {number} of {video.label}", str(error)
                ) from None
        with self.db.transaction() as tx:
            tx.lock(_WRITE_LOCK)
            tx.execute(
                "INSERT INTO subjects (name, created) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                (subject, _now()),
            )
            subject_id = self._subject_id(tx, subject)
            row = tx.execute(
                "INSERT INTO videos (subject_id, label, sha256, md5, duration, vpdq, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (subject_id, sha256) DO NOTHING "
                "RETURNING id",
                (
                    subject_id,
                    video.label,
                    video.sha256,
                    video.md5,
                    video.duration,
                    "".join(f"{feature.line()}\n" for feature in video.vpdq),
                    _now(),
                ),
            ).fetchone()
            if row is None:
                return False
            video_id, now = row[0], _now()
            for time, signature in zip(video.times, video.frames, strict=True):
                photo = tx.execute(
                    "INSERT INTO photos (subject_id, label, sha256, signature, created) "
                    "VALUES (?, ?, ?, ?, ?) RETURNING id",
                    (
                        subject_id,
                        signature.label,
                        signature.sha256,
                        cfsig.dumps([signature]),
                        now,
                    ),
                ).fetchone()
                tx.execute(
                    "INSERT INTO video_frames (photo_id, video_id, time) VALUES (?, ?, ?)",
                    (photo[0], video_id, time),
                )
                self._insert_pdq(tx, photo[0], signature)
                self._record_change(tx, "add", photo[0])
            if max_photos is not None:
                (held,) = tx.execute(
                    "SELECT COUNT(*) FROM photos WHERE subject_id = ?", (subject_id,)
                ).fetchone()
                if held > max_photos:
                    raise SubjectFull(
                        f"{held} photos and video frames for one subject; the limit is {max_photos}"
                    )
            tx.notify(CHANGES_CHANNEL, "add")
        return True

    def withdraw(self, subject: str) -> int:
        """Delete a subject and all its signatures (deleted, not hidden); return how many photos.

        The rows go, and a ``remove`` change for each photo is written in the same transaction,
        so every worker following the feed drops them too. Then the database is purged of
        them (:meth:`Database.purge`: zeroed and out of SQLite's log; VACUUMed on PostgreSQL).
        """
        with self.db.transaction() as tx:
            tx.lock(_WRITE_LOCK)
            subject_id = self._subject_id(tx, subject)
            if subject_id is None:
                return 0
            photo_ids = [
                row[0]
                for row in tx.execute(
                    "SELECT id FROM photos WHERE subject_id = ? ORDER BY id", (subject_id,)
                ).fetchall()
            ]
            self._delete_photos(tx, photo_ids)
            tx.execute("DELETE FROM videos WHERE subject_id = ?", (subject_id,))
            tx.execute("DELETE FROM subjects WHERE id = ?", (subject_id,))
        self.db.purge(WITHDRAWN_TABLES)
        return len(photo_ids)

    def _delete_photos(self, tx: Transaction, photo_ids: list[int]) -> None:
        for photo_id in photo_ids:
            tx.execute("DELETE FROM photo_pdq WHERE photo_id = ?", (photo_id,))
            tx.execute("DELETE FROM video_frames WHERE photo_id = ?", (photo_id,))
            tx.execute("DELETE FROM photos WHERE id = ?", (photo_id,))
            self._record_change(tx, "remove", photo_id)
        if photo_ids:
            tx.notify(CHANGES_CHANNEL, "remove")

    def add_pdq_hashes(self, records: Iterable[PdqRecord], source: str) -> int:
        """Store PDQ hashes imported from a hash-sharing programme, in one transaction.

        Returns how many were added; a hash already imported from the same source is ignored,
        and a record marked withdrawn deletes that source's copy of the hash.
        """
        added = removed = 0
        with self.db.transaction() as tx:
            tx.lock(_WRITE_LOCK)
            batch: list[PdqRecord] = []
            for record in records:
                if not record.withdrawn:
                    batch.append(record)
                    if len(batch) == _PAGE:
                        added += self._insert_imported(tx, batch, source)
                        batch = []
                    continue
                added += self._insert_imported(tx, batch, source)  # keep the file's order
                batch = []
                gone = tx.execute(
                    "DELETE FROM imported_pdq WHERE source = ? AND hash = ? RETURNING id",
                    (source, record.hash_hex.lower()),
                ).fetchall()
                self._record_changes(tx, "unimport", [row_id for (row_id,) in gone])
                removed += len(gone)
            added += self._insert_imported(tx, batch, source)
            if added or removed:
                tx.notify(CHANGES_CHANNEL, "import")
        return added

    @classmethod
    def _insert_imported(cls, tx: Transaction, records: list[PdqRecord], source: str) -> int:
        """Insert a batch in one statement (a hash-sharing list can hold millions)."""
        if not records:
            return 0
        now = _now()
        rows = tx.execute(
            "INSERT INTO imported_pdq (source, hash, quality, ref, created) VALUES "
            + ", ".join(["(?, ?, ?, ?, ?)"] * len(records))
            + " ON CONFLICT (source, hash) DO NOTHING RETURNING id",
            [
                value
                for record in records
                for value in (source, record.hash_hex.lower(), record.quality, record.ref, now)
            ],
        ).fetchall()
        cls._record_changes(tx, "import", sorted(row_id for (row_id,) in rows))
        return len(rows)

    @staticmethod
    def _subject_id(tx: Transaction, name: str) -> int | None:
        row = tx.execute("SELECT id FROM subjects WHERE name = ?", (name,)).fetchone()
        return None if row is None else row[0]

    @staticmethod
    def _insert_pdq(tx: Transaction, photo_id: int, signature: Signature) -> None:
        for orientation, pdq in signature.pdq.items():
            tx.execute(
                "INSERT INTO photo_pdq (photo_id, orientation, hash, quality) VALUES (?, ?, ?, ?)",
                (photo_id, orientation, pdq.hex(), pdq.quality),
            )

    @staticmethod
    def _record_change(tx: Transaction, action: str, photo_id: int) -> None:
        tx.execute(
            "INSERT INTO changes (action, photo_id, created) VALUES (?, ?, ?)",
            (action, photo_id, _now()),
        )

    @staticmethod
    def _record_changes(tx: Transaction, action: str, ids: list[int]) -> None:
        if ids:
            now = _now()
            tx.execute(
                "INSERT INTO changes (action, photo_id, created) VALUES "
                + ", ".join(["(?, ?, ?)"] * len(ids)),
                [value for row_id in ids for value in (action, row_id, now)],
            )

    # ---- reading -------------------------------------------------------------------------

    def photos(self) -> Iterator[RegisteredPhoto]:
        """Every registered photo, in registration order."""
        rows = self.db.execute(
            "SELECT p.id, s.name, p.label, p.sha256 FROM photos p "
            "JOIN subjects s ON s.id = p.subject_id ORDER BY p.id"
        )
        for row in rows:
            yield RegisteredPhoto(*row)

    def signatures(self) -> Iterator[tuple[int, Signature]]:
        """Every (photo id, signature), a page at a time so a large registry is never all in
        memory, and no cursor is held open between pages."""
        rows = self._pages("SELECT id, signature FROM photos WHERE id > ? ORDER BY id LIMIT ?")
        for photo_id, blob in rows:
            yield photo_id, self._decode(photo_id, blob)

    def signature(self, photo_id: int) -> Signature:
        rows = self.db.execute("SELECT signature FROM photos WHERE id = ?", (photo_id,))
        if not rows:
            raise KeyError(photo_id)
        return self._decode(photo_id, rows[0][0])

    def photo(self, photo_id: int) -> RegisteredPhoto:
        rows = self.db.execute(
            "SELECT p.id, s.name, p.label, p.sha256 FROM photos p "
            "JOIN subjects s ON s.id = p.subject_id WHERE p.id = ?",
            (photo_id,),
        )
        if not rows:
            raise KeyError(photo_id)
        return RegisteredPhoto(*rows[0])

    def photos_by_id(self, photo_ids: list[int]) -> dict[int, RegisteredPhoto]:
        """The registered photos among ``photo_ids`` (withdrawn ones are missing), by id."""
        found: dict[int, RegisteredPhoto] = {}
        for start in range(0, len(photo_ids), _PAGE):
            page = photo_ids[start : start + _PAGE]
            rows = self.db.execute(
                "SELECT p.id, s.name, p.label, p.sha256 FROM photos p "
                "JOIN subjects s ON s.id = p.subject_id "
                f"WHERE p.id IN ({', '.join(['?'] * len(page))})",
                page,
            )
            found.update((row[0], RegisteredPhoto(*row)) for row in rows)
        return found

    def add_vpdq(self, records: Iterable[VpdqRecord], source: str) -> int:
        """Store vPDQ signals imported from a programme, in one transaction; return how many
        were new (a signal already imported from the same source is ignored)."""
        added = 0
        with self.db.transaction() as tx:
            tx.lock(_WRITE_LOCK)
            for record in records:
                row = tx.execute(
                    "INSERT INTO imported_vpdq (source, digest, signal, ref, created) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (source, digest) DO NOTHING RETURNING id",
                    (source, record.digest, record.signal, record.ref, _now()),
                ).fetchone()
                added += row is not None
        return added

    def last_imported_vpdq(self) -> int:
        """The id of the latest imported vPDQ signal (0 for none): signals are only ever
        added, so a holder of them knows by this whether to read them again."""
        rows = self.db.execute("SELECT MAX(id) FROM imported_vpdq")
        return int(rows[0][0] or 0) if rows else 0

    def imported_vpdq(self) -> Iterator[tuple[int, str, str, str | None]]:
        """Every imported vPDQ signal: (id, source, signal, reference)."""
        yield from self._pages(
            "SELECT id, source, signal, ref FROM imported_vpdq WHERE id > ? ORDER BY id LIMIT ?"
        )

    def videos(self) -> Iterator[RegisteredVideo]:
        """Every registered video, in registration order."""
        rows = self.db.execute(
            "SELECT v.id, s.name, v.label, v.sha256, v.md5, v.duration FROM videos v "
            "JOIN subjects s ON s.id = v.subject_id ORDER BY v.id"
        )
        for row in rows:
            yield RegisteredVideo(*row)

    def video_frames(self) -> dict[int, VideoFrame]:
        """Which registered photos are frames of a registered video: photo id -> (video, time)."""
        rows = self.db.execute("SELECT photo_id, video_id, time FROM video_frames")
        return {photo_id: VideoFrame(video_id, time) for photo_id, video_id, time in rows}

    def video_vpdq(self, video_id: int) -> str:
        """A registered video's vPDQ, as the lines of Meta's hash file."""
        rows = self.db.execute("SELECT vpdq FROM videos WHERE id = ?", (video_id,))
        if not rows:
            raise KeyError(video_id)
        return rows[0][0]

    def subjects(self) -> list[tuple[str, int]]:
        """(subject, number of photos) for every subject."""
        return self.db.execute(
            "SELECT s.name, COUNT(p.id) FROM subjects s LEFT JOIN photos p ON p.subject_id = s.id "
            "GROUP BY s.id, s.name ORDER BY s.name"
        )

    def pdq_hashes(self, *, dihedral: bool = False) -> Iterator[PdqRow]:
        """Every PDQ hash held: registered photos' and imported ones (see ``PdqRow``).

        A photo gives its original orientation, or with ``dihedral`` all eight (a lookup then
        recognises rotated and mirrored reposts; an export gives the original only). An imported
        hash's quality is None when its format did not carry one.
        """
        where = "" if dihedral else " AND orientation = 'original'"
        for photo_id, quality, hash_hex in self._pages(
            f"SELECT photo_id, quality, hash FROM photo_pdq WHERE photo_id > ?{where} "
            "ORDER BY photo_id, orientation LIMIT ?"
        ):
            yield PdqRow("photo", str(photo_id), quality, hash_hex)
        for row_id, quality, hash_hex in self._pages(
            "SELECT id, quality, hash FROM imported_pdq WHERE id > ? ORDER BY id LIMIT ?"
        ):
            yield PdqRow("imported", str(row_id), quality, hash_hex)

    def photo_pdq_hashes(self, owner: str | None = None) -> Iterator[tuple[int, int, str]]:
        """(photo id, quality, hex) of each registered photo's original orientation; with
        ``owner``, only those of subjects whose names begin with it."""
        where, params = _prefixed("s.name", owner)
        rows = self.db.execute(
            "SELECT q.photo_id, q.quality, q.hash FROM photo_pdq q "
            "JOIN photos p ON p.id = q.photo_id JOIN subjects s ON s.id = p.subject_id "
            f"WHERE q.orientation = 'original'{where} ORDER BY q.photo_id",
            params,
        )
        yield from rows

    def imported_pdq_hashes(
        self, owner: str | None = None
    ) -> Iterator[tuple[int, str, int | None, str, str | None]]:
        """(row id, source, quality, hex, ref) of each imported hash; with ``owner``, only
        those of sources whose names begin with it."""
        where, params = _prefixed("source", owner)
        rows = self.db.execute(
            "SELECT id, source, quality, hash, ref FROM imported_pdq "
            f"WHERE 1 = 1{where} ORDER BY id",
            params,
        )
        yield from rows

    def _pages(self, sql: str) -> Iterator[tuple]:
        """The rows of ``sql`` (``WHERE key > ? ... ORDER BY key ... LIMIT ?``, key first in
        the select list), a page at a time. A key may have a few rows (a photo's eight
        orientations): a full page is cut before its last key, which the next page starts with.
        """
        last = 0
        while True:
            rows = self.db.execute(sql, (last, _PAGE))
            if len(rows) < _PAGE:
                yield from rows
                return
            cut = len(rows)
            while cut > 0 and rows[cut - 1][0] == rows[-1][0]:
                cut -= 1
            yield from rows[:cut]
            last = rows[cut - 1][0]

    def photo_pdq(self, photo_id: int) -> dict[str, PdqHash]:
        """A registered photo's PDQ hashes by orientation (empty if there is no such photo)."""
        rows = self.db.execute(
            "SELECT orientation, hash, quality FROM photo_pdq WHERE photo_id = ?", (photo_id,)
        )
        return {name: PdqHash.from_hex(hash_hex, quality) for name, hash_hex, quality in rows}

    def imported_pdq(self, row_id: int) -> tuple[str, str, int | None, str | None] | None:
        """(source, hex, quality, ref) of one imported hash, or None if there is no such row."""
        rows = self.db.execute(
            "SELECT source, hash, quality, ref FROM imported_pdq WHERE id = ?", (row_id,)
        )
        return rows[0] if rows else None

    def _decode(self, photo_id: int, blob: bytes) -> Signature:
        return cfsig.loads(bytes(blob), f"{self.name} photo {photo_id}")[0]

    # ---- following changes ---------------------------------------------------------------

    def head_seq(self) -> int:
        """The number of the latest change (0 if none): load the registry after reading it,
        then follow ``changes_since(head)``."""
        return self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM changes")[0][0]

    def identity(self) -> str:
        """A random id given to this registry the first time it is asked for: a packed index
        (index/packed.py) names the registry it was taken from with it."""
        read = "SELECT value FROM meta WHERE key = 'registry_id'"
        rows = self.db.execute(read)
        if not rows:
            with self.db.transaction() as tx:
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('registry_id', ?) "
                    "ON CONFLICT (key) DO NOTHING",
                    (uuid.uuid4().hex,),
                )
            rows = self.db.execute(read)
        return rows[0][0]

    def change_stamp(self, seq: int) -> str:
        """Change ``seq`` as recorded ("" for 0 or a change that is not there): the same
        number with another stamp means the registry was restored or rebuilt since."""
        rows = self.db.execute(
            "SELECT action, photo_id, created FROM changes WHERE seq = ?", (seq,)
        )
        return ":".join(map(str, rows[0])) if rows else ""

    def changes_since(self, seq: int, limit: int = 10_000) -> tuple[int, list[Change]]:
        """Changes numbered above ``seq`` (at most ``limit``, oldest first), and the number to
        pass next time: the last change's, or ``seq`` itself when nothing is new."""
        rows = self.db.execute(
            "SELECT seq, action, photo_id FROM changes WHERE seq > ? ORDER BY seq LIMIT ?",
            (seq, limit),
        )
        changes = [Change(*row) for row in rows]
        return (changes[-1].seq if changes else seq), changes

    def wait_for_change(self, timeout: float) -> bool:
        """Block until the registry changes or ``timeout`` seconds pass; True if it changed.

        PostgreSQL: LISTEN on a dedicated connection, so the change arrives as it commits.
        SQLite: look for a new change number every 50 ms. A change that lands between two
        calls is reported by the next one, never lost (on PostgreSQL, from the first call on).
        """
        if isinstance(self.db, PostgresDatabase):
            if self._listener is None:
                self._listener = self.db.listener(CHANGES_CHANNEL)
            try:
                return self._listener.wait(timeout)
            except engine_errors():  # the connection was lost: listen anew on the next call
                self._listener.close()
                self._listener = None
                raise
        if self._seen_seq is None:
            self._seen_seq = self.head_seq()
        deadline = time.monotonic() + timeout
        while True:
            head = self.head_seq()
            if head != self._seen_seq:
                self._seen_seq = head
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(_POLL_SECONDS, remaining))
