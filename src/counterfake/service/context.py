"""The parts one service process is made of, wired together once at start."""

from __future__ import annotations

from dataclasses import dataclass

import cv2

from counterfake.imaging import DEFAULT_MAX_PIXELS
from counterfake.keys import KeyStore
from counterfake.registry import Registry
from counterfake.service.engine import REPACK_SECONDS, LoadedIndexes, MatchingEngine
from counterfake.service.limits import RateLimiter
from counterfake.service.metrics import ServiceMetrics
from counterfake.service.records import ReviewStore
from counterfake.service.video_jobs import VideoJobs
from counterfake.service.webhooks import WebhookSender


@dataclass(frozen=True)
class ServiceSettings:
    db: str
    max_body_bytes: int = 32 * 1024 * 1024
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_batch: int = 32  # images per batch request
    max_upload_signatures: int = 200  # signatures in one registrar upload
    max_subject_photos: int = 1000  # photos registered for one subject
    allow_private_webhooks: bool = False  # webhooks may call loopback and private addresses
    rate: float = 50.0  # requests a second per key, on average...
    burst: int = 200  # ...with bursts up to this many
    request_timeout: float = 60.0
    webhook_timeout: float = 5.0
    webhook_attempts: int = 5
    webhook_backoff: float = 1.0
    feed_wait: float = 0.5  # longest a worker waits on the change feed before polling again
    index_file: str | None = None  # the packed candidate index (index/packed.py), if any
    index_kind: str = "hash"  # or "compact": the candidate index a worker runs (docs/index.md)
    repack_seconds: float = REPACK_SECONDS  # how often at most the index file is written again
    sync_video_seconds: float = 20.0  # videos up to this long are answered at once; longer: a job
    max_video_seconds: float = 4 * 3600.0  # longer videos are refused before decoding


class Service:
    """Database, keys, registry connections, matching engine, review store, webhooks, limits."""

    def __init__(self, settings: ServiceSettings, loaded: LoadedIndexes | None = None) -> None:
        # Requests already run in parallel threads; OpenCV's own threads on top of that
        # oversubscribe the cores.
        cv2.setNumThreads(1)
        self.settings = settings
        self.registry = Registry(settings.db)  # a RegistryError names an unusable database
        self.db = self.registry.db  # keys and review live beside the registry
        self.keys = KeyStore(self.db)
        self.reviews = ReviewStore(self.db)
        self.engine = MatchingEngine(
            self.registry,
            max_pixels=settings.max_pixels,
            feed_wait=settings.feed_wait,
            loaded=loaded,
            packed=settings.index_file,
            repack_seconds=settings.repack_seconds,
            index_kind=settings.index_kind,
        )
        self.video_jobs = VideoJobs(self.db)
        self.limiter = RateLimiter(settings.rate, settings.burst)
        self.metrics = ServiceMetrics(lambda: len(self.engine), self.engine.pdq_count)
        self.webhooks = WebhookSender(
            timeout=settings.webhook_timeout,
            attempts=settings.webhook_attempts,
            backoff=settings.webhook_backoff,
            on_outcome=lambda outcome: self.metrics.webhooks.labels(outcome).inc(),
            allow_private=settings.allow_private_webhooks,
        )

    def start(self) -> None:
        self.engine.start()

    def close(self) -> None:
        self.video_jobs.close()
        self.engine.stop()
        self.webhooks.close()
        self.registry.close()
