"""Admin endpoints: API keys (create, list, revoke)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from pydantic import BaseModel, Field

from counterfake.keys import ApiKey
from counterfake.service.auth import require

router = APIRouter(tags=["admin"])
admin = require("admin")


class KeyRequest(BaseModel):
    role: Literal["admin", "registrar", "platform", "reviewer"]
    name: str = Field(min_length=1, max_length=100, description="the organisation the key is for")


class KeyOut(BaseModel):
    id: int
    name: str
    role: str
    created_at: str
    revoked_at: str | None


class NewKeyOut(KeyOut):
    secret: str = Field(description="shown once; only its SHA-256 is stored")


def _out(key: ApiKey) -> dict:
    return {
        "id": key.id,
        "name": key.name,
        "role": key.role,
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
    }


@router.post("/keys", status_code=201, response_model=NewKeyOut)
def create_key(body: KeyRequest, request: Request, _: ApiKey = Depends(admin)) -> dict:
    key, secret = request.app.state.service.keys.create(body.role, body.name)
    return {**_out(key), "secret": secret}


@router.get("/keys", response_model=list[KeyOut])
def list_keys(request: Request, _: ApiKey = Depends(admin)) -> list[dict]:
    return [_out(key) for key in request.app.state.service.keys.list()]


@router.delete("/keys/{key_id}", response_model=KeyOut)
def revoke_key(
    request: Request, key_id: int = Path(ge=1, le=2**62), _: ApiKey = Depends(admin)
) -> dict:
    keys = request.app.state.service.keys
    if not any(key.id == key_id for key in keys.list()):
        raise HTTPException(404, f"no key {key_id}")
    keys.revoke(key_id)
    return next(_out(key) for key in keys.list() if key.id == key_id)
