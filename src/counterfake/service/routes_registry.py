"""Registrar endpoints: subjects, signature uploads, withdrawal, the helpline's webhook.

A registrar (a helpline) sees only the subjects it created: in the registry a subject is
stored under a name scoped to its organisation (see organisations.py), so two helplines may use
the same subject name and neither can see, add to or withdraw the other's.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request, UploadFile
from pydantic import BaseModel, Field, HttpUrl, field_validator

from counterfake.keys import ApiKey
from counterfake.registered import MAX_SUBJECT, SubjectFull, check_subject_name
from counterfake.service.auth import require
from counterfake.service.forms import one_part
from counterfake.service.organisations import scope, scoped
from counterfake.service.webhooks import WebhookTargetError, pin
from counterfake.signature import cfsig

router = APIRouter(tags=["registrar"])
registrar = require("registrar")


class SubjectRequest(BaseModel):
    name: str = Field(min_length=1, max_length=MAX_SUBJECT)

    @field_validator("name")
    @classmethod
    def _valid(cls, name: str) -> str:
        return check_subject_name(name)


class SubjectOut(BaseModel):
    subject: str
    photos: int


class Registered(BaseModel):
    subject: str
    added: int
    already_registered: int
    videos_added: int = 0


class Withdrawn(BaseModel):
    subject: str
    deleted_signatures: int


class WebhookRequest(BaseModel):
    url: HttpUrl


class WebhookOut(BaseModel):
    url: str
    secret: str = Field(description="signs every delivery (HMAC-SHA256); shown once")


def stored_name(key: ApiKey, subject: str) -> str:
    return scoped(key.name, subject)


def _subjects(request: Request, key: ApiKey) -> dict[str, int]:
    prefix = scope(key.name)
    registry = request.app.state.service.registry
    return {
        name[len(prefix) :]: count for name, count in registry.subjects() if name.startswith(prefix)
    }


def _check_subject(subject: str) -> None:
    try:
        check_subject_name(subject)
    except ValueError as error:
        raise HTTPException(400, str(error)) from None


@router.post("/subjects", status_code=201, response_model=SubjectOut)
def create_subject(body: SubjectRequest, request: Request, key: ApiKey = Depends(registrar)):
    if body.name in _subjects(request, key):
        raise HTTPException(409, f"subject {body.name!r} already exists")
    request.app.state.service.registry.register(stored_name(key, body.name), [])
    return {"subject": body.name, "photos": 0}


@router.get("/subjects", response_model=list[SubjectOut])
def list_subjects(request: Request, key: ApiKey = Depends(registrar)) -> list[dict]:
    return [{"subject": s, "photos": n} for s, n in sorted(_subjects(request, key).items())]


@router.post(
    "/subjects/{subject}/signatures",
    response_model=Registered,
    dependencies=[Depends(one_part("file"))],
)
def upload_signatures(
    subject: str, file: UploadFile, request: Request, key: ApiKey = Depends(registrar)
) -> dict:
    """Register the photos and videos in a .cfsig file made by ``counterfake hash`` (a video's
    sampled frames count towards the subject's limit of photos)."""
    _check_subject(subject)
    if subject not in _subjects(request, key):
        raise HTTPException(404, f"no subject {subject!r}; create it first")
    name = file.filename or "upload"
    service = request.app.state.service
    settings = service.settings
    try:
        contents = cfsig.loads_contents(file.file.read(), name, settings.max_upload_signatures)
    except cfsig.TooManySignatures as error:
        raise HTTPException(413, str(error)) from None
    except cfsig.SignatureFileError as error:
        raise HTTPException(400, str(error)) from None
    try:
        added, existing = service.registry.register(
            stored_name(key, subject), contents.photos, settings.max_subject_photos
        )
    except SubjectFull as error:
        raise HTTPException(422, f"{subject!r}: {error}; nothing was added") from None
    videos = 0
    for video in contents.videos:
        try:
            videos += service.registry.register_video(
                stored_name(key, subject), video, settings.max_subject_photos
            )
        except SubjectFull as error:
            service.engine.sync()
            raise HTTPException(
                422, f"{subject!r}: {error}; video {video.label!r} and those after it not added"
            ) from None
    service.engine.sync()
    return {
        "subject": subject,
        "added": added,
        "already_registered": existing,
        "videos_added": videos,
    }


@router.delete("/subjects/{subject}", response_model=Withdrawn)
def withdraw_subject(subject: str, request: Request, key: ApiKey = Depends(registrar)) -> dict:
    """Delete the subject and all her signatures; they stop matching in every worker. Her
    recorded matches keep only opaque ids, the decision and the times; nothing of her is left
    recoverable in the database (see docs/service.md, Security model)."""
    _check_subject(subject)
    if subject not in _subjects(request, key):
        raise HTTPException(404, f"no subject {subject!r}")
    service = request.app.state.service
    count = service.registry.withdraw(stored_name(key, subject))
    service.engine.sync()
    service.reviews.forget_subject(stored_name(key, subject))
    return {"subject": subject, "deleted_signatures": count}


@router.put("/webhook", response_model=WebhookOut)
def set_webhook(body: WebhookRequest, request: Request, key: ApiKey = Depends(registrar)) -> dict:
    """Where to POST recorded matches of this registrar's subjects (a fresh secret each time).

    The URL must resolve to public addresses only (422 otherwise), unless the service runs
    with ``--allow-private-webhooks``."""
    service = request.app.state.service
    try:
        pin(str(body.url), service.settings.allow_private_webhooks)
    except WebhookTargetError as error:
        raise HTTPException(422, str(error)) from None
    hook = service.reviews.set_webhook(key.name, str(body.url))
    return {"url": hook.url, "secret": hook.secret}


@router.delete("/webhook", status_code=204)
def remove_webhook(request: Request, key: ApiKey = Depends(registrar)) -> None:
    if not request.app.state.service.reviews.remove_webhook(key.name):
        raise HTTPException(404, "no webhook is set")
