"""The FastAPI application: routes, role documentation, JSON errors, limits and metrics.

Every error is JSON, ``{"error": "<one line>"}``: 4xx for anything the client sent wrong,
500 only for a fault of the service itself (logged, never with details in the answer).
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from counterfake import __version__
from counterfake.service import (
    routes_admin,
    routes_exchange,
    routes_matching,
    routes_registry,
    routes_review,
    routes_video,
)
from counterfake.service.context import Service, ServiceSettings
from counterfake.service.engine import LoadedIndexes
from counterfake.service.limits import BodyLimit, RequestTimeout
from counterfake.service.metrics import MetricsMiddleware

log = logging.getLogger(__name__)
PUBLIC = "public"
ROUTERS = (
    routes_admin.router,
    routes_registry.router,
    routes_matching.router,
    routes_video.router,
    routes_review.router,
    routes_exchange.router,
)


def create_app(settings: ServiceSettings, loaded: LoadedIndexes | None = None) -> FastAPI:
    """Build the service (opening the registry, and indexing it unless ``loaded`` brings the
    indexes) and its application."""
    service = Service(settings, loaded)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            service.close()

    app = FastAPI(
        title="counterfake",
        version=__version__,
        description="Match uploads against registered photos; register, withdraw, review.",
        lifespan=lifespan,
    )
    app.state.service = service
    for router in ROUTERS:
        _document_roles(router.routes)
        app.include_router(router)

    @app.get("/health", tags=["public"])
    async def health() -> dict:  # on the event loop: answers even when every thread is busy
        return {
            "status": "ok",
            "photos": len(service.engine),
            "backend": service.db.backend,
            "worker": os.getpid(),  # which process answered, when several share the port
        }

    @app.get("/metrics", tags=["public"], response_class=Response)
    def metrics() -> Response:
        return Response(service.metrics.exposition(), media_type="text/plain; version=0.0.4")

    _document_roles(app.routes)
    _json_errors(app)
    app.add_middleware(RequestTimeout, seconds=settings.request_timeout)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=service.metrics)
    return app


def roles_of(route: APIRoute) -> list[str]:
    """The roles an endpoint admits, read from its ``require(...)`` dependency."""
    pending = list(route.dependant.dependencies)
    while pending:
        dependency = pending.pop()
        roles = getattr(dependency.call, "roles", None)
        if roles is not None:
            return list(roles)
        pending.extend(dependency.dependencies)
    return [PUBLIC]


def _document_roles(routes: list) -> None:
    """Put each endpoint's roles in the OpenAPI document (``x-roles``) and its description."""
    for route in routes:
        if isinstance(route, APIRoute) and "x-roles" not in (route.openapi_extra or {}):
            roles = roles_of(route)
            route.openapi_extra = {**(route.openapi_extra or {}), "x-roles": roles}
            route.description = f"{route.description or ''}\n\nRoles: {', '.join(roles)}".strip()


def _json_errors(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"error": str(error.detail)}, error.status_code, headers=error.headers or None
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = [
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}"
            for e in error.errors()
        ]
        return JSONResponse({"error": "; ".join(problems)[:1000]}, 422)

    @app.exception_handler(Exception)
    async def fault(request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error answering %s %s", request.method, request.url.path)
        return JSONResponse({"error": "internal error"}, 500)
