"""Multipart uploads that must hold one file: a second part of the same name is refused.

FastAPI binds ``file: UploadFile`` to one part and silently drops any other of the same name,
so a client that sent two would have one of them answered as if it were the only one. The
dependency below reads the parsed form (parsed once per request and shared with the endpoint)
and answers 400 instead.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import HTTPException, Request


def one_part(field: str) -> Callable[[Request], Awaitable[None]]:
    """A FastAPI dependency refusing a request with more than one ``field`` part (400)."""

    async def check(request: Request) -> None:
        if "multipart/form-data" not in request.headers.get("content-type", ""):
            return  # no form: the endpoint's own validation answers
        parts = len((await request.form()).getlist(field))
        if parts > 1:
            raise HTTPException(400, f"{parts} '{field}' parts; send exactly one")

    return check
