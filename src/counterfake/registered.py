"""What the registry hands out and what it accepts: its records (a registered photo or video,
a video's frame, a change of the feed), its errors, a subject's name, and where a registry is
by default."""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from counterfake.db import is_postgres_url

DEFAULT_DB = "counterfake.db"


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
