"""Who may call what: every endpoint names the roles it admits.

A request carries ``Authorization: Bearer <key>``; the key is looked up in the key store
(stored hashed there), must not be revoked, and must have one of the endpoint's roles. The
key's name is the organisation it belongs to: a platform sees only the matches recorded under
its name, a registrar only the subjects created under its name. Each key also draws from its
own rate-limit bucket here, so an unauthenticated flood is refused before any work is done.
"""

from __future__ import annotations

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from counterfake.keys import ApiKey

_bearer = HTTPBearer(auto_error=False, description="an API key made by `counterfake keys create`")


def require(*roles: str):
    """A FastAPI dependency admitting keys of ``roles``; it returns the caller's ApiKey."""

    def check(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
    ) -> ApiKey:
        if credentials is None or not credentials.credentials:
            raise HTTPException(
                401, "missing API key (Authorization: Bearer <key>)", {"WWW-Authenticate": "Bearer"}
            )
        service = request.app.state.service
        key = service.keys.authenticate(credentials.credentials)
        if key is None:
            raise HTTPException(401, "unknown or revoked API key", {"WWW-Authenticate": "Bearer"})
        if key.role not in roles:
            raise HTTPException(
                403, f"a {key.role} key may not do this (needs: {', '.join(roles)})"
            )
        wait = service.limiter.acquire(key.id)
        if wait:
            raise HTTPException(
                429,
                "rate limit exceeded for this key; slow down",
                {"Retry-After": service.limiter.retry_after(wait)},
            )
        return key

    check.roles = roles  # type: ignore[attr-defined]  # read by the app to document the roles in the OpenAPI document
    return check
