"""POST /match/video against the real server: a short video answered at once, a long one as
a job only its key can read, bad videos as 400s; registering a video through a .cfsig;
record=true (review and the helpline's webhook); the answer is the command line's finding."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from service_support import start_service
from test_service_webhooks import Receiver
from video_support import held, textured, write_video

from counterfake.scan import Scanner
from counterfake.service.webhooks import sign
from counterfake.signature import cfsig
from counterfake.video.signature import make_video_signature

PICTURES = [textured(seed, 400, 300) for seed in range(4)]


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    folder = tmp_path_factory.mktemp("service")
    running = start_service(
        str(folder / "registry.db"),
        folder,
        "--sync-video-seconds",
        "5",
        "--allow-private-webhooks",
    )
    clip = write_video(folder / "clip.mp4", held(PICTURES, 2.0))
    upload = cfsig.dumps([], [make_video_signature(clip, "clip.mp4")])
    with running.as_("registrar", "helpline") as client:
        assert client.post("/subjects", json={"name": "alice"}).status_code == 201
        answer = client.post("/subjects/alice/signatures", files={"file": ("c.cfsig", upload)})
        assert answer.status_code == 200, answer.text
        assert answer.json()["videos_added"] == 1
    yield running
    running.stop()


def post(service, name: str, data: bytes, platform: str = "platform-a", **params):
    with service.as_("platform", platform) as client:
        return client.post(
            "/match/video", files={"file": (name, data)}, params={"mask": True, **params}
        )


def test_a_short_video_is_answered_at_once(service, tmp_path) -> None:
    small = [np.ascontiguousarray(f[::2, ::2]) for f in held(PICTURES[1:3], 2.0)]
    answer = post(service, "short.mp4", write_video(tmp_path / "s.mp4", small).read_bytes())
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "done" and body["job"] is None
    (match,) = body["result"]["matches"]
    assert match["kind"] == "repost" and match["media"] == "video"
    assert match["subject"] != "alice" and match["photo"].startswith("v_")
    (part,) = match["segments"]
    assert part["scan"][0] == 0.0 and 1.5 <= part["registered"][0] <= 2.5


def test_a_long_video_is_a_job_only_its_key_reads(service, tmp_path) -> None:
    others = [textured(seed, 400, 300) for seed in (10, 11)]
    frames = held(others, 2.0) + held(PICTURES, 2.0)
    data = write_video(tmp_path / "l.mkv", frames).read_bytes()
    answer = post(service, "long.mkv", data, record=True)
    assert answer.status_code == 202, answer.text
    job = answer.json()["job"]
    with service.as_("platform", "platform-b") as other:
        assert other.get(f"/match/video/{job}").status_code == 404
    with service.as_("platform", "platform-a") as client:
        deadline = time.monotonic() + 60
        while (body := client.get(f"/match/video/{job}").json())["status"] == "running":
            assert time.monotonic() < deadline
            time.sleep(0.2)
    assert body["status"] == "done", body
    (match,) = body["result"]["matches"]
    (part,) = match["segments"]
    assert 3.5 <= part["scan"][0] <= 4.5 and part["registered"][0] <= 0.5
    with service.as_("platform", "platform-a") as client:  # the job recorded it when it ended
        recorded = client.get(f"/matches/{match['match_id']}").json()
        assert recorded["media"] == "video" and recorded["photo"] == match["photo"]


@pytest.mark.parametrize("data", [b"", b"\x00\x00\x00\x18ftypmp42" + bytes(64), b"GIF89a"])
def test_bad_videos_are_400_with_one_line(service, data: bytes) -> None:
    answer = post(service, "bad.mp4", data)
    assert answer.status_code == 400
    assert answer.json()["error"].startswith("bad.mp4: ")


def test_only_platform_keys_match(service) -> None:
    with service.as_("registrar", "helpline") as client:
        answer = client.post("/match/video", files={"file": ("a.mp4", b"x")})
    assert answer.status_code == 403


def test_the_answer_is_the_scans_finding_with_opaque_ids(service, tmp_path) -> None:
    path = write_video(tmp_path / "s.mp4", held(PICTURES[1:3], 2.0))
    (match,) = post(service, "s.mp4", path.read_bytes()).json()["result"]["matches"]
    (finding,) = Scanner(service.db).scan_file(str(path)).matches
    expected = finding.to_json()
    assert set(match) == set(expected) | {"match_id"}
    assert (expected["photo"], expected["subject"]) == ("clip.mp4", "helpline/alice")
    for field in ("kind", "score", "nfa", "altered_fraction", "inliers", "instances"):
        assert match[field] == expected[field], field
    assert match["segments"] == expected["segments"]
    assert match["frame_time"] == expected["frame_time"] and match["media"] == "video"


def test_a_recorded_video_match_is_reviewed_and_reaches_the_webhook(service, tmp_path) -> None:
    receiver = Receiver("ok")
    try:
        with service.as_("registrar", "helpline") as registrar:
            secret = registrar.put("/webhook", json={"url": receiver.url}).json()["secret"]
        data = write_video(tmp_path / "r.mp4", held(PICTURES[:2], 2.0)).read_bytes()
        with service.as_("platform", "platform-r") as client:
            answer = client.post(
                "/match/video", files={"file": ("r.mp4", data)}, params={"record": "true"}
            )
            (match,) = answer.json()["result"]["matches"]
            assert match["match_id"] is not None
            (record,) = client.get("/matches").json()
            assert record["id"] == match["match_id"] and record["media"] == "video"
            assert (record["photo"], record["subject"]) == (match["photo"], match["subject"])
        receiver.wait_for(1, 10)
        [(_, headers, body)] = receiver.received
        event = json.loads(body)
        assert event["match_id"] == match["match_id"] and event["media"] == "video"
        assert (event["subject"], event["photo"], event["kind"]) == ("alice", "clip.mp4", "repost")
        assert event["segments"] == match["segments"] and event["frame_time"] is not None
        timestamp = headers["X-Counterfake-Timestamp"]
        assert headers["X-Counterfake-Signature"] == sign(secret, timestamp, body)
        with service.as_("reviewer", "helpline") as reviewer:
            decided = reviewer.post(
                f"/matches/{match['match_id']}/decision", json={"status": "rejected"}
            )
            assert decided.status_code == 200 and decided.json()["photo"] == "clip.mp4"
        with service.as_("platform", "platform-r") as client:  # the same file: not raised again
            again = client.post("/match/video", files={"file": ("r.mp4", data)})
            assert again.json()["result"]["matches"] == []
            other = write_video(tmp_path / "o.mp4", held(PICTURES[:2], 2.0), options={"crf": "30"})
            fresh = client.post("/match/video", files={"file": ("o.mp4", other.read_bytes())})
            assert len(fresh.json()["result"]["matches"]) == 1  # another file still is
    finally:
        receiver.close()


def test_a_video_matching_an_imported_vpdq_signal_names_the_record(service, tmp_path) -> None:
    from counterfake.registry import Registry
    from counterfake.video.exchange import VpdqRecord
    from counterfake.video.vpdq import vpdq_hash

    shared = held([textured(seed, 400, 300) for seed in (20, 21, 22)], 1.0)
    hashed = vpdq_hash(write_video(tmp_path / "shared.mp4", shared))
    with Registry(service.db) as registry:
        assert registry.add_vpdq([VpdqRecord(tuple(hashed), "te-42")], "te") == 1
    copy = write_video(tmp_path / "copy.mkv", shared, options={"crf": "30"}).read_bytes()
    with service.as_("platform", "platform-v") as client:
        answer = client.post(
            "/match/video", files={"file": ("copy.mkv", copy)}, params={"record": "true"}
        )
        (match,) = answer.json()["result"]["matches"]
        assert (match["photo"], match["subject"], match["signal"]) == (
            "te: te-42",
            "imported from te",
            "vpdq",
        )
        assert "nfa" not in match and match["match_id"] is None  # no helpline to tell
        assert match["segments"] == [{"scan": [0.0, 3.0]}]
        assert client.get("/matches").json() == []
