"""Opaque references, and the PDQ lists a registry exports under them.

A platform, a hash-sharing programme or anyone reading an exported list learns of a registered
photo or subject only an opaque id: an HMAC of its registry id under a secret kept in the
registry's own database, so ids are stable for one deployment (the command line and every
service worker give the same id for the same photo) and tell nothing about the registry (not
its size, not the order of registration, not a name). ``number`` gives the same reference as an
integer, for clients that need HMA's exact shape (its ``bank_content_id`` is an integer).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterator
from hashlib import sha256
from typing import TYPE_CHECKING

from counterfake.db import Database
from counterfake.exchange import PdqRecord
from counterfake.signature.pdq import MIN_QUALITY

if TYPE_CHECKING:
    from counterfake.registry import Registry

REGISTERED_BANK = "counterfake"  # the bank of registered photos; no import may take its name
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS service_settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)
_NUMBER_BITS = 60  # an integer reference fits a signed 64-bit column with room to spare


class OpaqueIds:
    """Opaque ids under the registry's secret (created by whichever process needs it first)."""

    def __init__(self, db: Database) -> None:
        db.ensure_schema(_SCHEMA)
        with db.transaction() as tx:  # two workers starting at once: the first one's wins
            tx.execute(
                "INSERT INTO service_settings (key, value) VALUES ('opaque_secret', ?) "
                "ON CONFLICT (key) DO NOTHING",
                (secrets.token_hex(32),),
            )
        [(secret,)] = db.execute("SELECT value FROM service_settings WHERE key = 'opaque_secret'")
        self._secret = bytes.fromhex(secret)

    def _digest(self, kind: str, value: str | int) -> str:
        return hmac.new(self._secret, f"{kind}:{value}".encode(), sha256).hexdigest()

    def __call__(self, kind: str, value: str | int) -> str:
        """``<k>_<24 hex digits>``: names a subject, photo or imported hash without telling
        which it is."""
        return f"{kind[0]}_{self._digest(kind, value)[:24]}"

    def number(self, kind: str, value: str | int) -> int:
        """The same reference as a positive integer below 2**60."""
        return int(self._digest(kind, value)[: _NUMBER_BITS // 4], 16)


def exported_records(
    registry: Registry,
    ids: OpaqueIds,
    *,
    owner: str | None = None,
    imports: bool = False,
) -> Iterator[PdqRecord]:
    """What an export holds: registered photos' PDQ hashes (original orientation, those under
    Meta's quality floor left out) under opaque ids, in the bank ``counterfake``; and, with
    ``imports``, imported hashes under their list's own reference (or an opaque one), in their
    bank. With ``owner`` (a scoped-name prefix, see service/organisations.py) only the photos
    of subjects and the banks whose names begin with it; without, everything held."""
    for photo_id, quality, hash_hex in registry.photo_pdq_hashes(owner):
        if quality >= MIN_QUALITY:
            yield PdqRecord(hash_hex, quality, ids("photo", photo_id), bank=REGISTERED_BANK)
    if imports:
        for row_id, bank, imported_quality, hash_hex, ref in registry.imported_pdq_hashes(owner):
            yield PdqRecord(hash_hex, imported_quality, ref or ids("imported", row_id), bank=bank)
