"""Webhook deliveries: a helpline learns of a recorded match without polling.

A delivery never blocks the request that caused it: events go onto a bounded queue that a few
sender threads drain. Each POST carries the JSON body, signed with HMAC-SHA256 under the
receiver's secret (``X-Counterfake-Signature: sha256=<hex>``, over ``<timestamp>.<body>`` with
the timestamp in ``X-Counterfake-Timestamp`` so a receiver can refuse replays). A failed
delivery (connection error, timeout, non-2xx answer) is retried with exponential backoff up to
``attempts`` times; every attempt has a bounded timeout, so a target that hangs holds one
sender for at most ``timeout`` seconds per attempt.

**Where a webhook may call.** A registrar chooses the URL, so it must not reach what only the
service can reach: loopback, private (RFC 1918, unique-local), link-local (a cloud's metadata
service at 169.254.169.254), shared, reserved and multicast addresses are refused, unless the
operator starts the service with ``--allow-private-webhooks``. The name is resolved when the
URL is set (so a bad one is refused at once) and again for every attempt, and the attempt is
made to the very address that was checked (the connection is pinned to it; the Host header and,
for HTTPS, the name the certificate is checked against stay the URL's), so a name that resolves
to a public address when checked and to an internal one when called (DNS rebinding) reaches
nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

log = logging.getLogger(__name__)


class WebhookTargetError(ValueError):
    """A webhook URL the service may not call; the message says why, in one line."""


@dataclass(frozen=True)
class PinnedTarget:
    """A webhook URL with its host replaced by the checked address it resolved to."""

    url: str  # what to connect to
    host: str  # the URL's host[:port], for the Host header
    server_name: str  # the URL's host name, for TLS (SNI and the certificate check)


def _forbidden(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def pin(url: str, allow_private: bool = False) -> PinnedTarget:
    """Resolve ``url``'s host once and check every address it has; the first one is used.

    Raises WebhookTargetError for a URL that is not http(s), a name that does not resolve,
    or (unless ``allow_private``) any address that is not a public unicast one.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookTargetError(f"{url[:200]!r} is not an http(s) URL")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        found = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise WebhookTargetError(f"{parts.hostname}: cannot be resolved ({error})") from None
    addresses = [str(info[4][0]) for info in found]
    if not allow_private:
        refused = [address for address in addresses if _forbidden(address)]
        if refused:
            raise WebhookTargetError(
                f"{parts.hostname} resolves to {refused[0]}, a loopback, private, link-local "
                "or reserved address; the service calls only public addresses "
                "(see serve --allow-private-webhooks)"
            )
    address = addresses[0]
    literal = f"[{address}]" if ":" in address else address
    netloc = f"{literal}:{parts.port}" if parts.port else literal
    host = parts.netloc.rpartition("@")[2]
    return PinnedTarget(urlunsplit(parts._replace(netloc=netloc)), host, str(parts.hostname))


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
        allow_private: bool = False,
    ) -> None:
        self.allow_private = allow_private
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
                target = pin(delivery.url, self.allow_private)
                answer = self._client.post(
                    target.url,
                    content=delivery.body,
                    headers={**headers, "Host": target.host},
                    extensions={"sni_hostname": target.server_name},
                )
            except (httpx.HTTPError, WebhookTargetError) as error:
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
