"""The review store on a database made by an earlier release: its tables gain the ``media``
column (on SQLite and on a real PostgreSQL server), and the old photo records read as photos."""

from __future__ import annotations

from counterfake.db import connect
from counterfake.service.records import ReviewStore

OLD_RECORDS = """CREATE TABLE match_records (
    id {SERIAL_PK}, created TEXT NOT NULL, platform TEXT NOT NULL, photo_id INTEGER NOT NULL,
    subject TEXT NOT NULL, photo_label TEXT NOT NULL, kind TEXT NOT NULL, score REAL NOT NULL,
    altered_fraction REAL NOT NULL, image_sha256 TEXT NOT NULL, image_pdq TEXT NOT NULL,
    status TEXT NOT NULL, decided TEXT, decided_by TEXT)"""
OLD_SUPPRESSIONS = """CREATE TABLE match_suppressions (
    id {SERIAL_PK}, photo_id INTEGER NOT NULL, image_sha256 TEXT NOT NULL,
    image_pdq TEXT NOT NULL, match_id INTEGER NOT NULL, created TEXT NOT NULL)"""
PDQ = "f" * 64


def test_an_earlier_releases_tables_gain_media_and_keep_their_records(registry_target) -> None:
    with connect(registry_target) as db:
        db.ensure_schema((OLD_RECORDS, OLD_SUPPRESSIONS))
        db.execute(
            "INSERT INTO match_records (created, platform, photo_id, subject, photo_label, kind, "
            "score, altered_fraction, image_sha256, image_pdq, status) "
            "VALUES ('2026-01-01', 'p', 7, 'alice', 'a.jpg', 'repost', 0.9, 0.0, 'ab', ?, "
            "'pending')",
            (PDQ,),
        )
    with connect(registry_target) as db:
        store = ReviewStore(db)
        ReviewStore(db)  # a second worker starting on the same database adds nothing twice
        old = store.get(1)
        assert old is not None and old.media == "photo" and old.photo_label == "a.jpg"
        video = store.record(
            "p",
            {
                "photo_id": 7,
                "subject": "alice",
                "photo_label": "clip.mp4",
                "kind": "repost",
                "score": 0.8,
                "altered_fraction": 0.0,
                "image_sha256": "cd",
                "image_pdq": "",
                "media": "video",
            },
        )
        assert video.media == "video"
        store.decide(video.id, "rejected", "reviewer")
        assert store.suppressed(7, "cd", "", "video")
        assert not store.suppressed(7, "cd", PDQ, "photo")  # photo 7 is another thing
        store.decide(old.id, "rejected", "reviewer")
        assert store.suppressed(7, "other", PDQ, "photo")  # near-identical image, by PDQ
        assert not store.suppressed(7, "other", "", "video")
