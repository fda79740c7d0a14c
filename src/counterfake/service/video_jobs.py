"""Video match jobs: a long video is matched in the background and its answer fetched later.

A job's state lives in the registry's database, so any worker of a shared deployment answers
``GET /match/video/{job}``, whichever worker runs the job. Each worker runs its jobs one at a
time in one background thread (a video takes seconds to minutes of one core), and every job
belongs to the key that started it: another key is told it does not exist.

A worker that stops with a job running leaves it ``running``; it is not resumed (the upload
was a temporary file of that worker).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from counterfake.db import Database
from counterfake.imaging import ImageError
from counterfake.service.records import now

log = logging.getLogger(__name__)
Status = Literal["running", "done", "failed"]
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS video_jobs (
        id {SERIAL_PK},
        platform TEXT NOT NULL,
        name TEXT NOT NULL,
        status TEXT NOT NULL,
        result TEXT,
        error TEXT,
        created TEXT NOT NULL,
        finished TEXT
    )""",
)


@dataclass(frozen=True)
class VideoJob:
    job: int
    name: str
    status: Status
    result: dict[str, Any] | None
    error: str | None
    created: str
    finished: str | None


class VideoJobs:
    """Jobs in the database, run by one background thread of this process."""

    def __init__(self, db: Database) -> None:
        self.db = db
        db.ensure_schema(_SCHEMA)
        self._runner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="video-job")

    def start(
        self, platform: str, name: str, path: str, work: Callable[[str], dict[str, Any]]
    ) -> int:
        """Record a job and run ``work(path)`` for it in the background; ``path`` (a temporary
        copy of the upload) is deleted when it ends, however it ends."""
        with self.db.transaction() as tx:
            (job,) = tx.execute(
                "INSERT INTO video_jobs (platform, name, status, created) "
                "VALUES (?, ?, 'running', ?) RETURNING id",
                (platform, name, now()),
            ).fetchone()
        self._runner.submit(self._run, job, path, work)
        return job

    def _run(self, job: int, path: str, work: Callable[[str], dict[str, Any]]) -> None:
        try:
            result = work(path)
        except ImageError as error:  # a VideoError: the video's own one-line problem
            self._finish(job, "failed", None, str(error))
        except Exception:
            log.exception("video job %s failed", job)
            self._finish(job, "failed", None, "internal error")
        else:
            self._finish(job, "done", result, None)
        finally:
            os.unlink(path)

    def _finish(self, job: int, status: Status, result: dict | None, error: str | None) -> None:
        self.db.execute(
            "UPDATE video_jobs SET status = ?, result = ?, error = ?, finished = ? WHERE id = ?",
            (status, json.dumps(result) if result is not None else None, error, now(), job),
        )

    def get(self, job: int, platform: str) -> VideoJob | None:
        """The job if it exists and belongs to ``platform``."""
        rows = self.db.execute(
            "SELECT id, name, status, result, error, created, finished FROM video_jobs "
            "WHERE id = ? AND platform = ?",
            (job, platform),
        )
        if not rows:
            return None
        job_id, name, status, result, error, created, finished = rows[0]
        loaded = json.loads(result) if result is not None else None
        return VideoJob(job_id, name, status, loaded, error, created, finished)

    def close(self) -> None:
        self._runner.shutdown(wait=False, cancel_futures=True)
