"""What the service keeps besides the registry: recorded matches, their review, suppressions,
each helpline's webhook, and the secret behind opaque ids.

A record names what matched by ``media`` and ``photo_id``: a registered photo (``photo``), or
a registered video (``video``; ``photo_id`` is then the video's id, and ``image_pdq`` is
empty: a video has no one PDQ hash, so only the same file, by SHA-256, is suppressed again).

All of it lives in the registry's database (SQLite or PostgreSQL, through ``db.Database``) so
that every worker of a shared deployment sees the same review state. A rejected match adds a
suppression for its photo: the same scanned image (same SHA-256, or a PDQ hash within
``NEAR_IDENTICAL_PDQ`` bits) is not raised again for that photo.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from counterfake.db import Database
from counterfake.references import OpaqueIds
from counterfake.signature.pdq import PdqHash, hamming_distance

log = logging.getLogger(__name__)
NEAR_IDENTICAL_PDQ = 8  # of 256 bits: a re-encode of the same image, not a different picture
STATUSES = ("pending", "confirmed", "rejected")

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS match_records (
        id {SERIAL_PK},
        created TEXT NOT NULL,
        platform TEXT NOT NULL,
        photo_id INTEGER NOT NULL,
        subject TEXT NOT NULL,
        photo_label TEXT NOT NULL,
        kind TEXT NOT NULL,
        score REAL NOT NULL,
        altered_fraction REAL NOT NULL,
        image_sha256 TEXT NOT NULL,
        image_pdq TEXT NOT NULL,
        status TEXT NOT NULL,
        decided TEXT,
        decided_by TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS match_records_platform ON match_records (platform, id)",
    """CREATE TABLE IF NOT EXISTS match_suppressions (
        id {SERIAL_PK},
        photo_id INTEGER NOT NULL,
        image_sha256 TEXT NOT NULL,
        image_pdq TEXT NOT NULL,
        match_id INTEGER NOT NULL,
        created TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS match_suppressions_photo ON match_suppressions (photo_id)",
    """CREATE TABLE IF NOT EXISTS webhooks (
        owner TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        secret TEXT NOT NULL,
        created TEXT NOT NULL
    )""",
)
# Added to the tables of an earlier release, which held photos' matches only.
_MEDIA_COLUMN = {"media": "TEXT NOT NULL DEFAULT 'photo'"}
_RECORD_COLUMNS = (
    "id, created, platform, photo_id, subject, photo_label, kind, score, altered_fraction, "
    "image_sha256, image_pdq, status, decided, decided_by, media"
)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class MatchRecord:
    id: int
    created: str
    platform: str
    photo_id: int
    subject: str
    photo_label: str
    kind: str
    score: float
    altered_fraction: float
    image_sha256: str
    image_pdq: str
    status: str
    decided: str | None
    decided_by: str | None
    media: str = "photo"  # what photo_id names: a registered "photo" or "video"

    @property
    def withdrawn(self) -> bool:
        """Whether its subject was withdrawn: ``subject`` and ``photo_label`` then already hold
        the opaque ids a platform knows them by (see ReviewStore.forget_subject)."""
        return self.image_sha256 == ""


@dataclass(frozen=True)
class Webhook:
    owner: str
    url: str
    secret: str


@dataclass(frozen=True)
class RecordFilter:
    status: str | None = None
    subject: str | None = None
    platform: str | None = None
    since: str | None = None
    until: str | None = None
    limit: int = 100
    after_id: int = 0


class ReviewStore:
    """Recorded matches and their review, suppressions, webhooks and the opaque-id secret."""

    def __init__(self, db: Database) -> None:
        self.db = db
        db.ensure_schema(_SCHEMA)
        db.ensure_columns("match_records", _MEDIA_COLUMN)
        db.ensure_columns("match_suppressions", _MEDIA_COLUMN)
        self.opaque = OpaqueIds(db)  # names a subject or photo to a platform, see references.py

    # ---- matches ---------------------------------------------------------------------------

    def suppressed(
        self, photo_id: int, image_sha256: str, image_pdq: str, media: str = "photo"
    ) -> bool:
        """Whether a reviewer rejected a match of this photo (or video) with this or a
        near-identical image (a video: this file)."""
        rows = self.db.execute(
            "SELECT image_sha256, image_pdq FROM match_suppressions "
            "WHERE photo_id = ? AND media = ?",
            (photo_id, media),
        )
        pdq = PdqHash.from_hex(image_pdq).bits if image_pdq else None
        return any(
            sha == image_sha256
            or (
                pdq is not None
                and other != ""
                and hamming_distance(PdqHash.from_hex(other).bits, pdq) <= NEAR_IDENTICAL_PDQ
            )
            for sha, other in rows
        )

    def record(self, platform: str, fields: dict[str, Any]) -> MatchRecord:
        """Store a match for review; ``fields`` has the MatchRecord fields from photo_id to
        image_pdq, and ``media`` when it is not a photo's."""
        values = (
            now(),
            platform,
            fields["photo_id"],
            fields["subject"],
            fields["photo_label"],
            fields["kind"],
            fields["score"],
            fields["altered_fraction"],
            fields["image_sha256"],
            fields["image_pdq"],
            "pending",
            fields.get("media", "photo"),
        )
        with self.db.transaction() as tx:
            row = tx.execute(
                "INSERT INTO match_records (created, platform, photo_id, subject, photo_label, "
                "kind, score, altered_fraction, image_sha256, image_pdq, status, media) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                values,
            ).fetchone()
        record = self.get(row[0])
        assert record is not None  # inserted in the transaction just committed
        return record

    def get(self, match_id: int, platform: str | None = None) -> MatchRecord | None:
        """One record; with ``platform``, only if that platform recorded it."""
        sql = f"SELECT {_RECORD_COLUMNS} FROM match_records WHERE id = ?"
        params: list[Any] = [match_id]
        if platform is not None:
            sql += " AND platform = ?"
            params.append(platform)
        rows = self.db.execute(sql, params)
        return MatchRecord(*rows[0]) if rows else None

    def list(self, where: RecordFilter) -> list[MatchRecord]:
        clauses: list[str] = ["id > ?"]
        params: list[object] = [where.after_id]
        for column, value in (
            ("status", where.status),
            ("subject", where.subject),
            ("platform", where.platform),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if where.since is not None:
            clauses.append("created >= ?")
            params.append(where.since)
        if where.until is not None:
            clauses.append("created < ?")
            params.append(where.until)
        sql = (
            f"SELECT {_RECORD_COLUMNS} FROM match_records WHERE {' AND '.join(clauses)} "
            "ORDER BY id LIMIT ?"
        )
        return [MatchRecord(*row) for row in self.db.execute(sql, [*params, where.limit])]

    def decide(self, match_id: int, status: str, reviewer: str) -> MatchRecord | None:
        """Confirm or reject; a rejection also suppresses this image for this photo.

        A decision may be changed: confirming a rejected match lifts its suppression, so that
        the image is raised again. That is allowed (a reviewer's mistake must be mendable) and
        logged at WARNING with the reviewer's organisation.
        """
        with self.db.transaction() as tx:
            row = tx.execute(
                "SELECT photo_id, image_sha256, image_pdq, media, status FROM match_records "
                "WHERE id = ?",
                (match_id,),
            ).fetchone()
            if row is None:
                return None
            *found, before = row
            if before == "rejected" and status != "rejected":
                log.warning(
                    "match %d: %s changed rejected to %s; its suppression is lifted",
                    match_id,
                    reviewer,
                    status,
                )
            tx.execute(
                "UPDATE match_records SET status = ?, decided = ?, decided_by = ? WHERE id = ?",
                (status, now(), reviewer, match_id),
            )
            tx.execute("DELETE FROM match_suppressions WHERE match_id = ?", (match_id,))
            if status == "rejected" and found[1]:  # a withdrawn subject's record keeps no hash
                tx.execute(
                    "INSERT INTO match_suppressions "
                    "(photo_id, image_sha256, image_pdq, media, match_id, created) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (*found, match_id, now()),
                )
        return self.get(match_id)

    def forget_subject(self, subject: str) -> int:
        """After a subject's withdrawal: keep of her recorded matches only what a platform needs
        to honour a takedown (the match, its platform, kind, score, decision and times, and
        opaque ids for the subject and the photo), not her name, the photo's label or the
        image's hashes; her suppressions go. Returns how many records were rewritten."""
        opaque_subject = self.opaque("subject", subject)
        with self.db.transaction() as tx:
            rows = tx.execute(
                "SELECT id, photo_id, media FROM match_records WHERE subject = ?", (subject,)
            ).fetchall()
            for match_id, photo_id, media in rows:
                tx.execute("DELETE FROM match_suppressions WHERE match_id = ?", (match_id,))
                tx.execute(
                    "UPDATE match_records SET subject = ?, photo_label = ?, image_sha256 = '', "
                    "image_pdq = '' WHERE id = ?",
                    (opaque_subject, self.opaque(media, photo_id), match_id),
                )
        self.db.purge(("match_records", "match_suppressions"))
        return len(rows)

    # ---- webhooks --------------------------------------------------------------------------

    def set_webhook(self, owner: str, url: str) -> Webhook:
        """Point the owner's webhook at ``url`` with a fresh signing secret."""
        hook = Webhook(owner, url, secrets.token_hex(32))
        with self.db.transaction() as tx:
            tx.execute("DELETE FROM webhooks WHERE owner = ?", (owner,))
            tx.execute(
                "INSERT INTO webhooks (owner, url, secret, created) VALUES (?, ?, ?, ?)",
                (owner, url, hook.secret, now()),
            )
        return hook

    def webhook(self, owner: str) -> Webhook | None:
        rows = self.db.execute("SELECT owner, url, secret FROM webhooks WHERE owner = ?", (owner,))
        return Webhook(*rows[0]) if rows else None

    def remove_webhook(self, owner: str) -> bool:
        with self.db.transaction() as tx:
            return tx.execute("DELETE FROM webhooks WHERE owner = ?", (owner,)).rowcount > 0
