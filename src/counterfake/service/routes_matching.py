"""Platform endpoints: match an uploaded image, a batch of images, or client-side signatures.

Each answer has the fields of the command line's JSON (kind, score, altered_fraction, mask,
inliers, instances), except that a platform never learns whose photo matched: ``subject`` and
``photo`` are opaque ids, stable for one deployment. ``mask=true`` adds the altered region as
a base64 PNG; ``record=true`` stores each match for review and tells the subject's helpline
through its webhook.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Query, Request, UploadFile
from pydantic import BaseModel

from counterfake.imaging import ImageError
from counterfake.keys import ApiKey
from counterfake.masks import mask_png
from counterfake.results import Finding, Media
from counterfake.service.auth import require
from counterfake.service.context import Service
from counterfake.service.engine import Found, ScannedImage
from counterfake.service.forms import one_part
from counterfake.service.organisations import owner_of
from counterfake.service.records import now
from counterfake.signature import cfsig

router = APIRouter(tags=["platform"])
platform = require("platform")
MASK = Query(False, description="include the altered region as a base64 PNG")
RECORD = Query(False, description="store matches for review and notify the helpline")


class MatchOut(BaseModel):
    match_id: int | None
    subject: str
    photo: str
    kind: str
    score: float
    altered_fraction: float
    mask: str | None
    inliers: int
    instances: int


class ResultOut(BaseModel):
    name: str
    sha256: str | None
    error: str | None
    matches: list[MatchOut]


class BatchOut(BaseModel):
    results: list[ResultOut]


def _answer(
    request: Request,
    key: ApiKey,
    name: str,
    scanned: ScannedImage,
    found: list[Found],
    *,
    mask: bool,
    record: bool,
) -> dict[str, Any]:
    service = request.app.state.service
    reviews = service.reviews
    matches = []
    for item in found:
        photo, match = item.photo, item.match
        if reviews.suppressed(photo.photo_id, scanned.sha256, scanned.pdq_hex):
            continue
        finding = Finding.of(
            match,
            photo=reviews.opaque("photo", photo.photo_id),
            subject=reviews.opaque("subject", photo.subject),
            mask=_mask_base64(match.mask) if mask else None,
            instances=len(match.instances),
        )
        match_id = None
        if record:
            match_id = record_match(
                service,
                key.name,
                Recorded(photo.photo_id, "photo", photo.subject, photo.label),
                finding,
                scanned.sha256,
                scanned.pdq_hex or "",
            )
        matches.append({"match_id": match_id, **finding.to_json()})
    return {"name": name, "sha256": scanned.sha256, "error": None, "matches": matches}


def _mask_base64(mask: np.ndarray | None) -> str | None:
    return None if mask is None else base64.b64encode(mask_png(mask)).decode()


@dataclass(frozen=True)
class Recorded:
    """What a recorded match names, as the registry knows it (never shown to a platform)."""

    photo_id: int  # a registered photo's id, or a registered video's (``media``)
    media: Media
    subject: str
    label: str


def record_match(
    service: Service,
    platform: str,
    what: Recorded,
    finding: Finding,
    sha256: str,
    pdq_hex: str,
) -> int:
    """Store a match for review and queue the webhook of the helpline that registered what
    matched, if it set one; the record's id. A video's match also tells the helpline where
    in the scanned video it is (``media``, ``frame_time``, ``segments``)."""
    record = service.reviews.record(
        platform,
        {
            "photo_id": what.photo_id,
            "subject": what.subject,
            "photo_label": what.label,
            "kind": finding.kind,
            "score": finding.score,
            "altered_fraction": finding.altered_fraction,
            "image_sha256": sha256,
            "image_pdq": pdq_hex,
            "media": what.media,
        },
    )
    owner, subject = owner_of(what.subject)
    hook = service.reviews.webhook(owner)
    if hook is not None:
        video = finding.to_json() if finding.is_video else {}
        service.webhooks.send(
            hook.url,
            hook.secret,
            {
                "event": "match.recorded",
                "match_id": record.id,
                "subject": subject,
                "photo": what.label,
                "kind": finding.kind,
                "score": finding.score,
                "altered_fraction": finding.altered_fraction,
                **{k: video[k] for k in ("media", "frame_time", "segments") if k in video},
                "platform": platform,
                "sent": now(),
            },
        )
    return record.id


def _match_file(request: Request, key: ApiKey, file: UploadFile, mask: bool, record: bool):
    name = file.filename or "upload"
    try:
        scanned, found = request.app.state.service.engine.match_image(file.file.read(), name)
    except ImageError as error:
        return {"name": name, "sha256": None, "error": str(error), "matches": []}
    return _answer(request, key, name, scanned, found, mask=mask, record=record)


@router.post("/match/image", response_model=ResultOut, dependencies=[Depends(one_part("file"))])
def match_image(
    file: UploadFile,
    request: Request,
    mask: bool = MASK,
    record: bool = RECORD,
    key: ApiKey = Depends(platform),
) -> dict:
    """Match one uploaded image (multipart field ``file``)."""
    result = _match_file(request, key, file, mask, record)
    if result["error"]:
        raise HTTPException(400, result["error"])
    return result


@router.post("/match/batch", response_model=BatchOut)
def match_batch(
    files: list[UploadFile],
    request: Request,
    mask: bool = MASK,
    record: bool = RECORD,
    key: ApiKey = Depends(platform),
) -> dict:
    """Match many images (multipart fields ``files``); an unreadable one gets its own error."""
    limit = request.app.state.service.settings.max_batch
    if len(files) > limit:
        raise HTTPException(400, f"{len(files)} images in one batch; the limit is {limit}")
    return {"results": [_match_file(request, key, f, mask, record) for f in files]}


@router.post("/match/signatures", response_model=BatchOut, dependencies=[Depends(one_part("file"))])
def match_signatures(
    file: UploadFile,
    request: Request,
    mask: bool = MASK,
    record: bool = RECORD,
    key: ApiKey = Depends(platform),
) -> dict:
    """Match the signatures in a .cfsig file made client-side by ``counterfake hash``.

    No pixels leave the platform; the alteration is localised on the signatures' coarse grid
    and the mask is drawn in the signature's frame (the image at 512 px on its longer side).
    """
    name = file.filename or "upload"
    limit = request.app.state.service.settings.max_batch
    try:
        signatures = cfsig.loads(file.file.read(), name, limit)
    except cfsig.SignatureFileError as error:  # TooManySignatures included: a batch's 400
        raise HTTPException(400, str(error)) from None
    engine = request.app.state.service.engine
    results = []
    for signature in signatures:
        scanned, found = engine.match_signature(signature)
        results.append(
            _answer(request, key, signature.label, scanned, found, mask=mask, record=record)
        )
    return {"results": results}
