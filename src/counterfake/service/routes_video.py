"""Platform endpoint for videos: ``POST /match/video`` (multipart ``file``) and its jobs.

A video whose declared duration is at most ``sync_video_seconds`` is answered at once (200,
``status: done`` with the result). A longer one is matched in the background (202, ``status:
running`` and a ``job`` number), and ``GET /match/video/{job}`` answers with its status and, once
done, the result. Limits are checked before anything is decoded (video/decode.py); a video that
cannot be read is a 400 with its one-line problem.

Matches are the command line's findings (counterfake.results.Finding, built as a scan builds
them) with opaque ids (``subject``; ``photo`` names the registered photo or video): the photo
endpoint's fields, plus ``media`` (``video`` or ``photo``), ``frame_time`` and ``segments``
(``scan`` and, for a registered video, ``registered`` time ranges in seconds). ``record=true``
stores each match for review and tells the helpline through its webhook, as for images; a
match a reviewer rejected is not raised again for the same file (its SHA-256: a video has no
one PDQ hash to compare re-encodes by). A video is also looked up among imported vPDQ signals
(Meta's decision): such a match names the imported record, has ``signal: vpdq`` and no
``nfa``, and is not recorded (no helpline registered it).
"""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response, UploadFile
from pydantic import BaseModel

from counterfake.imaging import ImageError
from counterfake.keys import ApiKey
from counterfake.masks import mask_png
from counterfake.results import Finding, Media
from counterfake.service.auth import require
from counterfake.service.forms import one_part
from counterfake.service.routes_matching import MASK, RECORD, Recorded, record_match
from counterfake.video.decode import Video, VideoLimits

router = APIRouter(tags=["platform"])
platform = require("platform")


class SegmentOut(BaseModel):
    scan: list[float]
    registered: list[float] | None = None


class VideoMatchOut(BaseModel):
    match_id: int | None
    subject: str
    photo: str
    kind: str
    score: float
    nfa: float | None = None  # none for a match by an imported hash alone (``signal``)
    altered_fraction: float
    mask: str | None
    inliers: int
    instances: int
    media: str
    frame_time: float
    segments: list[SegmentOut]
    signal: str | None = None


class VideoResultOut(BaseModel):
    name: str
    sha256: str
    matches: list[VideoMatchOut]


class VideoJobOut(BaseModel):
    job: int | None
    status: str
    name: str
    result: VideoResultOut | None
    error: str | None


def _limits(request: Request) -> VideoLimits:
    settings = request.app.state.service.settings
    return VideoLimits(max_duration=settings.max_video_seconds, max_pixels=settings.max_pixels)


def _matched(
    request: Request, platform: str, name: str, path: str, *, mask: bool, record: bool
) -> dict[str, Any]:
    """Match the video at ``path``; the answer with opaque ids (ImageError if unreadable)."""
    service = request.app.state.service
    matched = service.engine.match_video(path, _limits(request))
    sha256 = matched.sha256
    reviews = service.reviews
    matches = []
    for item in matched.found:
        match = item.match
        media: Media = "photo" if match.is_photo else "video"
        if reviews.suppressed(match.target, sha256, "", media):
            continue
        png = mask_png(match.mask) if mask and match.mask is not None else None
        finding = Finding.of_video(
            match,
            photo=reviews.opaque(media, match.target),
            subject=reviews.opaque("subject", item.subject),
            mask=base64.b64encode(png).decode() if png else None,
        )
        match_id = None
        if record:
            held = Recorded(match.target, media, item.subject, item.label)
            match_id = record_match(service, platform, held, finding, sha256, "")
        matches.append({"match_id": match_id, **finding.to_json()})
    for hit in matched.imported:
        finding = Finding.of_imported_video(hit, signal="vpdq")
        matches.append({"match_id": None, **finding.to_json()})  # no helpline to tell
    return {"name": name, "sha256": sha256, "matches": matches}


def _saved(file: UploadFile) -> str:
    """The upload copied to a temporary file (decoding reads a file; the caller deletes it)."""
    suffix = Path(file.filename or "").suffix[:10] if file.filename else ""
    with tempfile.NamedTemporaryFile(
        prefix="counterfake-video-", suffix=suffix, delete=False
    ) as out:
        shutil.copyfileobj(file.file, out)
        return out.name


@router.post(
    "/match/video",
    response_model=VideoJobOut,
    response_model_exclude_unset=True,  # a match has the finding's fields, as a scan writes it
    dependencies=[Depends(one_part("file"))],
    responses={
        202: {"model": VideoJobOut, "description": "a long video: matching in the background"}
    },
)
def match_video(
    file: UploadFile,
    request: Request,
    response: Response,
    mask: bool = MASK,
    record: bool = RECORD,
    key: ApiKey = Depends(platform),
) -> dict:
    """Match one uploaded video (multipart field ``file``) against registered videos and
    photos: at once for a short video, as a job for a long one."""
    service = request.app.state.service
    name = file.filename or "upload"
    path = _saved(file)
    try:
        with Video(path, _limits(request)) as video:
            duration = video.info.duration
    except ImageError as error:
        os.unlink(path)
        raise HTTPException(400, f"{name}: {error.problem}") from None
    if duration is not None and duration <= service.settings.sync_video_seconds:
        try:
            result = _matched(request, key.name, name, path, mask=mask, record=record)
        except ImageError as error:
            raise HTTPException(400, f"{name}: {error.problem}") from None
        finally:
            os.unlink(path)
        return {"job": None, "status": "done", "name": name, "result": result, "error": None}
    job = service.video_jobs.start(
        key.name,
        name,
        path,
        lambda saved: _matched(request, key.name, name, saved, mask=mask, record=record),
    )
    response.status_code = 202
    return {"job": job, "status": "running", "name": name, "result": None, "error": None}


@router.get("/match/video/{job}", response_model=VideoJobOut, response_model_exclude_unset=True)
def video_job(job: int, request: Request, key: ApiKey = Depends(platform)) -> dict:
    """A video job's status, and its result once done (only for the key that started it)."""
    found = request.app.state.service.video_jobs.get(job, key.name)
    if found is None:
        raise HTTPException(404, f"no video job {job}")
    return {
        "job": found.job,
        "status": found.status,
        "name": found.name,
        "result": found.result,
        "error": found.error,
    }
