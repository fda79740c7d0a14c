"""Recorded matches: reviewers list and decide them; a platform lists only its own.

A reviewer sees subject names and photo (or video) labels; a platform sees the same records
with the opaque ids its match answers gave, and a record of another platform does not exist
for it (404, not 403, so that ids tell nothing).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import BaseModel

from counterfake.keys import ApiKey
from counterfake.service.auth import require
from counterfake.service.records import MatchRecord, RecordFilter

router = APIRouter(tags=["review"])
reviewer = require("reviewer")
reader = require("reviewer", "platform")
Status = Literal["pending", "confirmed", "rejected"]
MATCH_ID = Path(ge=1, le=2**62, description="a recorded match's id")


class RecordOut(BaseModel):
    id: int
    created: str
    platform: str
    subject: str
    photo: str
    media: str
    kind: str
    score: float
    altered_fraction: float
    image_sha256: str
    status: str
    decided: str | None
    decided_by: str | None


class Decision(BaseModel):
    status: Literal["confirmed", "rejected"]


def _out(request: Request, key: ApiKey, record: MatchRecord) -> dict:
    reviews = request.app.state.service.reviews
    subject, photo = record.subject, record.photo_label
    if key.role == "platform" and not record.withdrawn:
        subject = reviews.opaque("subject", record.subject)
        photo = reviews.opaque(record.media, record.photo_id)
    return {
        "id": record.id,
        "created": record.created,
        "platform": record.platform,
        "subject": subject,
        "photo": photo,
        "media": record.media,
        "kind": record.kind,
        "score": record.score,
        "altered_fraction": record.altered_fraction,
        "image_sha256": record.image_sha256,
        "status": record.status,
        "decided": record.decided,
        "decided_by": record.decided_by,
    }


def _utc(value: datetime | None) -> str | None:
    """A time as the records store it: UTC, to the millisecond (see records.now), so that
    comparing the strings compares the times. A time without an offset is taken as UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds")


@router.get("/matches", response_model=list[RecordOut])
def list_matches(
    request: Request,
    status: Status | None = None,
    subject: str | None = Query(None, max_length=300, description="reviewers only"),
    platform: str | None = Query(None, max_length=100, description="reviewers only"),
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = Query(100, ge=1, le=1000),
    after_id: int = Query(0, ge=0, le=2**62, description="the last id of the previous page"),
    key: ApiKey = Depends(reader),
) -> list[dict]:
    if key.role == "platform":
        if subject is not None:
            raise HTTPException(403, "a platform cannot filter by subject")
        platform = key.name
    where = RecordFilter(status, subject, platform, _utc(since), _utc(until), limit, after_id)
    records = request.app.state.service.reviews.list(where)
    return [_out(request, key, record) for record in records]


@router.get("/matches/{match_id}", response_model=RecordOut)
def get_match(request: Request, match_id: int = MATCH_ID, key: ApiKey = Depends(reader)) -> dict:
    own = key.name if key.role == "platform" else None
    record = request.app.state.service.reviews.get(match_id, own)
    if record is None:
        raise HTTPException(404, f"no match {match_id}")
    return _out(request, key, record)


@router.post("/matches/{match_id}/decision", response_model=RecordOut)
def decide_match(
    body: Decision, request: Request, match_id: int = MATCH_ID, key: ApiKey = Depends(reviewer)
) -> dict:
    """Confirm or reject; a rejection stops this image being raised again for this photo."""
    record = request.app.state.service.reviews.decide(match_id, body.status, key.name)
    if record is None:
        raise HTTPException(404, f"no match {match_id}")
    return _out(request, key, record)
