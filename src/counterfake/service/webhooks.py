"""Webhook deliveries: a helpline learns of a recorded match without polling.

A delivery never blocks the request that caused it: events go onto a bounded queue that a few
sender threads drain. Each POST carries the JSON body, signed with HMAC-SHA256 under the
receiver's secret (``X-Counterfake-Signature: sha256=<hex>``, over ``<timestamp>.<body>`` with
the timestamp in ``X-Counterfake-Timestamp`` so a receiver can refuse replays). A failed
delivery (connection error, timeout, non-2xx answer) is retried with exponential backoff up to
``attempts`` times; every attempt has a bounded timeout, so a target that hangs holds one
sender for at most ``timeout`` seconds per attempt.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

log = logging.getLogger(__name__)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature a receiver recomputes to check a delivery."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


@dataclass(frozen=True)
class Delivery:
    url: str
    secret: str
    body: bytes


class WebhookSender:
    """Delivers signed events in background threads, retrying with exponential backoff."""

    def __init__(
        self,
        *,
        timeout: float = 5.0,
        attempts: int = 5,
        backoff: float = 1.0,
        senders: int = 4,
        queue_size: int = 10_000,
        on_outcome: Callable[[str], None] | None = None,
    ) -> None:
        self.timeout = timeout
        self.attempts = attempts
        self.backoff = backoff
        self._queue: queue.Queue[Delivery | None] = queue.Queue(queue_size)
        self._on_outcome = on_outcome or (lambda outcome: None)
        self._stop = threading.Event()
        self._client = httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=False)
        self._threads = [
            threading.Thread(target=self._run, name=f"webhook-{i}", daemon=True)
            for i in range(senders)
        ]
        for thread in self._threads:
            thread.start()

    def send(self, url: str, secret: str, event: dict[str, Any]) -> bool:
        """Queue an event; False (and counted as dropped) if the queue is full."""
        body = json.dumps(event, separators=(",", ":"), sort_keys=True).encode()
        try:
            self._queue.put_nowait(Delivery(url, secret, body))
        except queue.Full:
            self._on_outcome("dropped")
            return False
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            delivery = self._queue.get()
            if delivery is None:
                return
            self._deliver(delivery)

    def _deliver(self, delivery: Delivery) -> None:
        for attempt in range(self.attempts):
            if attempt:
                self._on_outcome("retried")
                if self._stop.wait(self.backoff * 2 ** (attempt - 1)):
                    return
            timestamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                "X-Counterfake-Timestamp": timestamp,
                "X-Counterfake-Signature": sign(delivery.secret, timestamp, delivery.body),
            }
            try:
                answer = self._client.post(delivery.url, content=delivery.body, headers=headers)
            except httpx.HTTPError as error:
                log.warning("webhook %s: attempt %d failed: %s", delivery.url, attempt + 1, error)
                continue
            if 200 <= answer.status_code < 300:
                self._on_outcome("delivered")
                return
            log.warning(
                "webhook %s: attempt %d answered %d", delivery.url, attempt + 1, answer.status_code
            )
        self._on_outcome("failed")

    def close(self) -> None:
        """Stop sending; deliveries still queued or waiting for a retry are abandoned."""
        self._stop.set()
        for _ in self._threads:
            try:
                self._queue.put_nowait(None)
            except queue.Full:
                break
        for thread in self._threads:
            thread.join(timeout=self.timeout + 1)
        self._client.close()
