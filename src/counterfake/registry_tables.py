"""The registry's tables, as SQL that SQLite and PostgreSQL both run (db.py fills in the few
words they spell differently), and the schema version a registry file records."""

from __future__ import annotations

# 3: each signature is stored as its compact record (signature/record.py). 2 and 1 stored it as
# a .cfsig file of one signature (1 without the photo_pdq table); registry_migrate.py rewrites them.
SCHEMA_VERSION = 3
OLD_SCHEMA_VERSIONS = ("1", "2")
WRITE_LOCK = 0x6366_0002  # serialises registry writers so change numbers commit in order
WITHDRAWN_TABLES = (
    "photos",
    "photo_pdq",
    "video_frames",
    "videos",
    "subjects",
)  # what a withdrawal deletes from
SCHEMA = (
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
