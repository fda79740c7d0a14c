"""Prometheus metrics: requests by route and status, latency by route, index sizes, webhooks.

Each app has its own collector registry, so two services in one process (the tests run two
workers side by side) keep separate counts. Routes are labelled by their template
(``/matches/{match_id}``), never by the raw path, so a scanner probing random paths cannot blow
up the number of series.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class ServiceMetrics:
    def __init__(self, indexed_photos: Callable[[], int], pdq_hashes: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "counterfake_requests",
            "HTTP requests answered",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "counterfake_request_seconds",
            "Time to answer an HTTP request",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.webhooks = Counter(
            "counterfake_webhook_deliveries",
            "Webhook delivery outcomes (delivered, retried, failed, dropped)",
            ["outcome"],
            registry=self.registry,
        )
        Gauge(
            "counterfake_index_photos",
            "Registered photos in this worker's index",
            registry=self.registry,
        ).set_function(indexed_photos)
        Gauge(
            "counterfake_pdq_hashes",
            "PDQ hashes in this worker's lookup index",
            registry=self.registry,
        ).set_function(pdq_hashes)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts and times every HTTP request, labelled by the route that answers it."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            # The router leaves the route that answered in the scope; none for a 404.
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            self.metrics.requests.labels(route, method, str(status)).inc()
            self.metrics.latency.labels(route, method).observe(time.perf_counter() - started)
