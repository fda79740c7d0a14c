"""API keys for the matching service: who may call it, and in which role.

A key's secret is 256 random bits, shown once when the key is created and stored only as its
SHA-256: a copy of the database does not give anyone a working key. (A slow password hash is
not needed: the secret is random and long, so its hash cannot be guessed back.) A revoked key
stays listed, with the time it was revoked, and never authenticates again.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from counterfake.db import Database

ROLES = ("admin", "registrar", "platform", "reviewer")
SECRET_PREFIX = "cfk_"  # makes a leaked key recognisable to secret scanners
_SECRET_BYTES = 32
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS api_keys (
        id {SERIAL_PK},
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        secret_sha256 TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        revoked_at TEXT
    )""",
)
_COLUMNS = "id, name, role, created_at, revoked_at"


class ApiKeyError(ValueError):
    """A key cannot be created or revoked as asked; the message says why in one line."""


@dataclass(frozen=True)
class ApiKey:
    id: int
    name: str
    role: str
    created_at: str
    revoked_at: str | None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class KeyStore:
    """API keys in the registry's database (SQLite or PostgreSQL)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        db.ensure_schema(_SCHEMA)

    def create(self, role: str, name: str) -> tuple[ApiKey, str]:
        """A new key and its secret; the secret is not stored and cannot be shown again."""
        if role not in ROLES:
            raise ApiKeyError(f"unknown role {role!r}: choose one of {', '.join(ROLES)}")
        if not name.strip():
            raise ApiKeyError("a key needs a name saying whose it is")
        secret = SECRET_PREFIX + secrets.token_urlsafe(_SECRET_BYTES)
        with self._db.transaction() as tx:
            row = tx.execute(
                "INSERT INTO api_keys (name, role, secret_sha256, created_at) "
                f"VALUES (?, ?, ?, ?) RETURNING {_COLUMNS}",
                (name, role, _digest(secret), _now()),
            ).fetchone()
        return ApiKey(*row), secret

    def authenticate(self, secret: str) -> ApiKey | None:
        """The key whose secret this is, or None if it is unknown or revoked."""
        if not secret.startswith(SECRET_PREFIX):
            return None
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM api_keys WHERE secret_sha256 = ? AND revoked_at IS NULL",
            (_digest(secret),),
        )
        return ApiKey(*rows[0]) if rows else None

    def list(self) -> list[ApiKey]:
        """Every key, revoked ones included, oldest first."""
        return [
            ApiKey(*row) for row in self._db.execute(f"SELECT {_COLUMNS} FROM api_keys ORDER BY id")
        ]

    def revoke(self, key_id: int) -> None:
        """Revoke a key at once; revoking it again keeps the first time."""
        with self._db.transaction() as tx:
            row = tx.execute("SELECT revoked_at FROM api_keys WHERE id = ?", (key_id,)).fetchone()
            if row is None:
                raise ApiKeyError(f"no API key with id {key_id}")
            if row[0] is None:
                tx.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ?", (_now(), key_id))
