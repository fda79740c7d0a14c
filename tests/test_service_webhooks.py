"""Webhooks: signed deliveries to a real local HTTP server, retries, and a target that hangs."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from service_support import EXAMPLES, register_photo, start_service

from counterfake.service.webhooks import WebhookSender, pin, sign
from counterfake.signature import cfsig
from counterfake.signature.extract import make_signature


class Receiver:
    """A real HTTP server on 127.0.0.1 that records what it is sent.

    ``behaviour`` decides each answer: "ok" (204), "fail-then-ok" (503 twice, then 204), or
    "hang" (read the request, then never answer while the test runs).
    """

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.received: list[tuple[float, dict, bytes]] = []
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((time.monotonic(), dict(self.headers), body))
                if receiver.behaviour == "hang":
                    receiver.release.wait(60)
                    return
                failing = receiver.behaviour == "fail-then-ok" and len(receiver.received) <= 2
                self.send_response(503 if failing else 204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count: int, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.02)

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(request):
    made = Receiver(request.param)
    yield made
    made.close()


@pytest.mark.parametrize("receiver", ["ok"], indirect=True)
def test_a_recorded_match_reaches_the_helplines_webhook_signed(tmp_path, photo, receiver):
    service = start_service(str(tmp_path / "registry.db"), tmp_path, "--allow-private-webhooks")
    try:
        with service.as_("registrar", "helpline") as registrar:
            secret = registrar.put("/webhook", json={"url": receiver.url}).json()["secret"]
            register_photo(registrar, "alice", photo, "holiday.jpg")
        repost = (EXAMPLES / "downloaded" / "repost.jpg").read_bytes()
        with service.as_("platform", "platform-a") as platform:
            answer = platform.post(
                "/match/image", files={"file": ("r.jpg", repost)}, params={"record": "true"}
            )
            match_id = answer.json()["matches"][0]["match_id"]
            platform.post("/match/image", files={"file": ("r.jpg", repost)})  # not recorded
        receiver.wait_for(1, 10)
        [(_, headers, body)] = receiver.received
        event = json.loads(body)
        assert event["event"] == "match.recorded" and event["match_id"] == match_id
        assert event["subject"] == "alice" and event["photo"] == "holiday.jpg"
        assert event["kind"] == "repost" and event["platform"] == "platform-a"
        timestamp = headers["X-Counterfake-Timestamp"]
        assert headers["X-Counterfake-Signature"] == sign(secret, timestamp, body)
        assert headers["X-Counterfake-Signature"] != sign("other secret", timestamp, body)
        metrics = service.client().get("/metrics").text
        assert 'counterfake_webhook_deliveries_total{outcome="delivered"} 1.0' in metrics
    finally:
        service.stop()


@pytest.mark.parametrize("receiver", ["ok"], indirect=True)
def test_a_match_of_an_organisation_named_with_a_slash_never_reaches_the_prefix_organisation(
    tmp_path, photo, receiver
):
    service = start_service(str(tmp_path / "registry.db"), tmp_path, "--allow-private-webhooks")
    try:
        with service.as_("registrar", "helpA") as prefix:
            assert prefix.put("/webhook", json={"url": receiver.url}).status_code == 200
        with service.as_("registrar", "helpA/x") as other:
            register_photo(other, "alice", photo, "holiday.jpg")
        repost = (EXAMPLES / "downloaded" / "repost.jpg").read_bytes()
        with service.as_("platform") as platform:
            answer = platform.post(
                "/match/image", files={"file": ("r.jpg", repost)}, params={"record": "true"}
            )
            assert answer.json()["matches"], answer.text
        receiver.wait_for(1, 2)
        assert receiver.received == []
    finally:
        service.stop()


@pytest.mark.parametrize("receiver", ["fail-then-ok"], indirect=True)
def test_a_failed_delivery_is_retried_with_exponential_backoff(receiver):
    outcomes: list[str] = []
    sender = WebhookSender(
        timeout=2, attempts=4, backoff=0.2, on_outcome=outcomes.append, allow_private=True
    )
    try:
        assert sender.send(receiver.url, "s3cret", {"event": "test"})
        receiver.wait_for(3, 10)
        time.sleep(0.1)
    finally:
        sender.close()
    times = [t for t, _, _ in receiver.received]
    assert len(times) == 3 and outcomes == ["retried", "retried", "delivered"]
    first_wait, second_wait = times[1] - times[0], times[2] - times[1]
    assert 0.15 < first_wait < 1.0 and second_wait > 1.5 * first_wait  # 0.2 s, then 0.4 s


@pytest.mark.parametrize("receiver", ["hang"], indirect=True)
def test_a_hanging_webhook_never_slows_the_request_and_gives_up_in_bounded_time(
    tmp_path, photo, receiver
):
    service = start_service(str(tmp_path / "registry.db"), tmp_path, "--allow-private-webhooks")
    try:
        with service.as_("registrar", "helpline") as registrar:
            registrar.put("/webhook", json={"url": receiver.url})
            register_photo(registrar, "alice", photo, "p")
        repost = (EXAMPLES / "downloaded" / "repost.jpg").read_bytes()
        with service.as_("platform") as platform:
            durations = []
            for _ in range(3):
                started = time.monotonic()
                answer = platform.post(
                    "/match/image", files={"file": ("r.jpg", repost)}, params={"record": "true"}
                )
                durations.append(time.monotonic() - started)
                assert answer.status_code == 200 and answer.json()["matches"]
        receiver.wait_for(3, 10)
        assert len(receiver.received) >= 3  # every delivery reached the target...
        assert max(durations) < 3  # ...and no answer waited for it (the target never answers)
        assert service.client().get("/health").status_code == 200
    finally:
        service.stop()


@pytest.mark.parametrize("receiver", ["hang"], indirect=True)
def test_every_attempt_on_a_hanging_target_times_out_and_the_delivery_fails(receiver):
    outcomes: list[str] = []
    sender = WebhookSender(
        timeout=0.3, attempts=2, backoff=0.1, on_outcome=outcomes.append, allow_private=True
    )
    started = time.monotonic()
    try:
        sender.send(receiver.url, "s", {"event": "test"})
        deadline = time.monotonic() + 10
        while "failed" not in outcomes and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        sender.close()
    assert outcomes == ["retried", "failed"] and len(receiver.received) == 2
    assert time.monotonic() - started < 3  # two 0.3 s attempts and a 0.1 s pause


@pytest.mark.parametrize("receiver", ["ok"], indirect=True)
def test_a_delivery_to_an_internal_address_is_refused_before_connecting(receiver):
    """The address is checked at every attempt, so a name that turned internal after the URL
    was set (DNS rebinding) reaches nothing."""
    outcomes: list[str] = []
    sender = WebhookSender(timeout=1, attempts=2, backoff=0.05, on_outcome=outcomes.append)
    try:
        sender.send(receiver.url, "s", {"event": "test"})
        deadline = time.monotonic() + 10
        while "failed" not in outcomes and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        sender.close()
    assert outcomes == ["retried", "failed"] and receiver.received == []


@pytest.mark.parametrize("receiver", ["ok"], indirect=True)
def test_a_delivery_connects_to_the_address_it_checked_and_names_the_host(receiver):
    port = receiver.server.server_address[1]
    outcomes: list[str] = []
    sender = WebhookSender(timeout=2, attempts=1, on_outcome=outcomes.append, allow_private=True)
    try:
        sender.send(f"http://localhost:{port}/hook", "s", {"event": "test"})
        receiver.wait_for(1, 10)
    finally:
        sender.close()
    [(_, headers, _)] = receiver.received
    assert headers["Host"] == f"localhost:{port}"
    pinned = pin(f"https://localhost:{port}/hook", allow_private=True)
    assert pinned.url in (f"https://127.0.0.1:{port}/hook", f"https://[::1]:{port}/hook")
    assert (pinned.host, pinned.server_name) == (f"localhost:{port}", "localhost")


@pytest.fixture
def second_receiver():
    made = Receiver("ok")
    yield made
    made.close()


@pytest.mark.parametrize("receiver", ["ok"], indirect=True)
def test_a_mass_registration_by_one_helpline_never_hides_anothers_photo(
    tmp_path, photo, receiver, second_receiver
):
    """helpB uploads one .cfsig holding the photo's signature 120 times and 30 more subjects
    with it; helpA's own registration of the photo still matches, for a copy and for an edit,
    and both helplines hear of every recorded match of their subjects."""
    service = start_service(str(tmp_path / "registry.db"), tmp_path, "--allow-private-webhooks")
    try:
        signature = make_signature(photo, "viral.jpg", "0" * 64)
        with service.as_("registrar", "helpB") as b:
            assert b.put("/webhook", json={"url": second_receiver.url}).status_code == 200
            repeated = [replace(signature, sha256=f"{n + 1:064x}") for n in range(120)]
            b.post("/subjects", json={"name": "flood"})
            answer = b.post(
                "/subjects/flood/signatures", files={"file": ("f.cfsig", cfsig.dumps(repeated))}
            )
            assert answer.json()["added"] == 120, answer.text
            for n in range(30):
                b.post("/subjects", json={"name": f"s{n}"})
                one = cfsig.dumps([replace(signature, sha256=f"{n + 500:064x}")])
                b.post(f"/subjects/s{n}/signatures", files={"file": ("s.cfsig", one)})
        with service.as_("registrar", "helpA") as a:
            assert a.put("/webhook", json={"url": receiver.url}).status_code == 200
            register_photo(a, "alice", photo, "holiday.jpg")
        with service.as_("platform") as platform:
            for name in ("repost.jpg", "manipulated.jpg"):
                image = (EXAMPLES / "downloaded" / name).read_bytes()
                answer = platform.post(
                    "/match/image", files={"file": (name, image)}, params={"record": "true"}
                )
                matches = answer.json()["matches"]
                assert len(matches) == 151, (name, len(matches))
                assert len({m["subject"] for m in matches}) == 32  # flood, s0..s29, alice
        receiver.wait_for(2, 10)
        second_receiver.wait_for(300, 20)
        events = [json.loads(body) for _, _, body in receiver.received]
        assert sorted((e["subject"], e["kind"]) for e in events) == [
            ("alice", "manipulated"),
            ("alice", "repost"),
        ]
        assert len(second_receiver.received) == 300
    finally:
        service.stop()
