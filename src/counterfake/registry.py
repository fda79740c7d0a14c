"""The registry of record: subjects, the signatures of
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

The tables are in registry_tables.py, the records this class hands out in registered.py, and
the reading side of the change feed in change_feed.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from counterfake.change_feed import CHANGES_CHANNEL, ChangeFeed
from counterfake.db import (
    Database,
    DatabaseError,
    Transaction,
    connect,
    display_name,
    engine_errors,
    is_postgres_url,
)
from counterfake.exchange import PdqRecord, PdqRow
from counterfake.registered import (
    RegisteredPhoto,
    RegisteredVideo,
    RegistryError,
    SubjectFull,
    VideoFrame,
)
from counterfake.registry_tables import (
    OLD_SCHEMA_VERSIONS,
    SCHEMA,
    SCHEMA_VERSION,
    WITHDRAWN_TABLES,
    WRITE_LOCK,
)
from counterfake.signature import cfsig, record
from counterfake.signature.extract import Signature
from counterfake.signature.pdq import PdqHash

if TYPE_CHECKING:
    from counterfake.video.exchange import VpdqRecord
    from counterfake.video.signature import VideoSignature

_PAGE = 500  # rows per query when streaming signatures


def _prefixed(column: str, prefix: str | None) -> tuple[str, tuple]:
    """A condition that ``column`` begins with ``prefix`` (none if None), and its parameters.

    Compared with ``substr``, not ``LIKE``: a prefix may hold ``%`` and ``_``."""
    if prefix is None:
        return "", ()
    return f" AND substr({column}, 1, ?) = ?", (len(prefix), prefix)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _check_signatures(signatures: Iterable[Signature], whose: str, each: str) -> None:
    """Refuse the whole registration, naming the first malformed signature ("frame 3 of ...")."""
    for number, signature in enumerate(signatures, 1):
        try:
            cfsig.check_signature(signature)
        except ValueError as error:
            raise cfsig.SignatureFileError(f"{each} {number} {whose}", str(error)) from None


def _check_held(tx: Transaction, subject_id: int, max_photos: int | None, what: str) -> None:
    """SubjectFull when the subject now holds more than ``max_photos`` (None: no limit)."""
    if max_photos is None:
        return
    (held,) = tx.execute(
        "SELECT COUNT(*) FROM photos WHERE subject_id = ?", (subject_id,)
    ).fetchone()
    if held > max_photos:
        raise SubjectFull(f"{held} {what} for one subject; the limit is {max_photos}")


class Registry(ChangeFeed):
    """Subjects, photo signatures and imported PDQ hashes in a SQLite file or PostgreSQL."""

    def __init__(self, target: str | os.PathLike) -> None:
        self.path = os.fspath(target)
        self.name = display_name(self.path) if is_postgres_url(self.path) else self.path
        if not is_postgres_url(self.path) and Path(self.path).is_dir():
            raise RegistryError(f"{self.path}: is a directory, not a registry file")
        try:
            self.db: Database = connect(self.path)
        except DatabaseError as error:
            raise RegistryError(
                f"{self.name}: not a usable counterfake registry ({error.problem})"
            ) from None
        try:
            self.db.ensure_schema(SCHEMA)
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
        """Stamp a new registry; refuse one of an older version (its signatures are in the old
        form: ``counterfake registry migrate`` rewrites them) and one of an unknown version.

        An old registry is refused rather than read as it is: its rows are about 61 kB a
        photo, and a registry read that way would stay there.
        """
        row = tx.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                "ON CONFLICT (key) DO NOTHING",
                (str(SCHEMA_VERSION),),
            )
        elif row[0] in OLD_SCHEMA_VERSIONS:
            raise RegistryError(
                f"{self.name}: registry in the old signature format (schema version {row[0]}); "
                f"run 'counterfake registry migrate {self.name}' first"
            )
        elif row[0] != str(SCHEMA_VERSION):
            raise RegistryError(
                f"{self.name}: registry schema version {row[0]} is not supported "
                f"(this tool uses {SCHEMA_VERSION})"
            )

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
        _check_signatures(signatures, f"for {subject}", "signature")
        added = existing = 0
        with self.db.transaction() as tx:
            subject_id = self._locked_subject(tx, subject)
            for signature in signatures:
                row = tx.execute(
                    "INSERT INTO photos (subject_id, label, sha256, signature, created) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (subject_id, sha256) DO NOTHING "
                    "RETURNING id",
                    (
                        subject_id,
                        signature.label,
                        signature.sha256,
                        record.encode(signature),
                        _now(),
                    ),
                ).fetchone()
                if row is None:
                    existing += 1
                    continue
                added += 1
                self._insert_pdq(tx, row[0], signature)
                self._record_change(tx, "add", row[0])
            if added:
                _check_held(tx, subject_id, max_photos, "photos")
                tx.notify(CHANGES_CHANNEL, "add")
        return added, existing

    def register_video(
        self, subject: str, video: VideoSignature, max_photos: int | None = None
    ) -> bool:
        """Register a video under a subject in one transaction: its frames as photos (the
        change feed and the index see them as photos) and the video with its frames' times.
        False if the subject already holds this video (by SHA-256); nothing is added then.
        With ``max_photos``, SubjectFull if its frames would take the subject past it."""
        _check_signatures(video.frames, f"of {video.label}", "frame")
        with self.db.transaction() as tx:
            subject_id = self._locked_subject(tx, subject)
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
                        record.encode(signature),
                        now,
                    ),
                ).fetchone()
                tx.execute(
                    "INSERT INTO video_frames (photo_id, video_id, time) VALUES (?, ?, ?)",
                    (photo[0], video_id, time),
                )
                self._insert_pdq(tx, photo[0], signature)
                self._record_change(tx, "add", photo[0])
            _check_held(tx, subject_id, max_photos, "photos and video frames")
            tx.notify(CHANGES_CHANNEL, "add")
        return True

    def _locked_subject(self, tx: Transaction, subject: str) -> int:
        """The subject's id, the subject made if new, under the write lock (so that change
        numbers commit in order and a subject's photo count holds until the commit)."""
        tx.lock(WRITE_LOCK)
        tx.execute(
            "INSERT INTO subjects (name, created) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
            (subject, _now()),
        )
        (subject_id,) = tx.execute("SELECT id FROM subjects WHERE name = ?", (subject,)).fetchone()
        return int(subject_id)

    def withdraw(self, subject: str) -> int:
        """Delete a subject and all its signatures (deleted, not hidden); return how many photos.

        The rows go, and a ``remove`` change for each photo is written in the same transaction,
        so every worker following the feed drops them too. Then the database is purged of
        them (:meth:`Database.purge`: zeroed and out of SQLite's log; VACUUMed on PostgreSQL).
        """
        with self.db.transaction() as tx:
            tx.lock(WRITE_LOCK)
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
            tx.lock(WRITE_LOCK)
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
        rows = self._pages(
            "SELECT id, label, sha256, signature FROM photos WHERE id > ? ORDER BY id LIMIT ?"
        )
        for photo_id, *stored in rows:
            yield photo_id, self._decode(photo_id, *stored)

    def signatures_by_id(self, photo_ids: list[int]) -> Iterator[tuple[int, Signature]]:
        """(photo id, signature) of the registered photos among ``photo_ids`` (withdrawn ones
        are missing), a page at a time: how an index shard (cluster/) loads its photos."""
        for start in range(0, len(photo_ids), _PAGE):
            page = photo_ids[start : start + _PAGE]
            marks = ", ".join(["?"] * len(page))
            rows = self.db.execute(
                f"SELECT id, label, sha256, signature FROM photos WHERE id IN ({marks})", page
            )
            for photo_id, *stored in rows:
                yield photo_id, self._decode(photo_id, *stored)

    def signature(self, photo_id: int) -> Signature:
        rows = self.db.execute(
            "SELECT label, sha256, signature FROM photos WHERE id = ?", (photo_id,)
        )
        if not rows:
            raise KeyError(photo_id)
        return self._decode(photo_id, *rows[0])

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
            tx.lock(WRITE_LOCK)
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

    def _decode(self, photo_id: int, label: str, sha256: str, blob: bytes) -> Signature:
        """A stored record as a signature; SignatureFileError naming the row if it is damaged."""
        try:
            return record.decode(bytes(blob), label, sha256)
        except ValueError as error:
            raise cfsig.SignatureFileError(f"{self.name} photo {photo_id}", str(error)) from None

    # ---- following changes ---------------------------------------------------------------
