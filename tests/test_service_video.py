"""POST /match/video against the real server: a short video answered at once, a long one as
a job only its key can read, bad videos as 400s; registering a video through a .cfsig."""

from __future__ import annotations

import time

import numpy as np
import pytest
from service_support import start_service
from video_support import held, textured, write_video

from counterfake.signature import cfsig
from counterfake.video.signature import make_video_signature

PICTURES = [textured(seed, 400, 300) for seed in range(4)]


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    folder = tmp_path_factory.mktemp("service")
    running = start_service(str(folder / "registry.db"), folder, "--sync-video-seconds", "5")
    clip = write_video(folder / "clip.mp4", held(PICTURES, 2.0))
    upload = cfsig.dumps([], [make_video_signature(clip, "clip.mp4")])
    with running.as_("registrar", "helpline") as client:
        assert client.post("/subjects", json={"name": "alice"}).status_code == 201
        answer = client.post("/subjects/alice/signatures", files={"file": ("c.cfsig", upload)})
        assert answer.status_code == 200, answer.text
        assert answer.json()["videos_added"] == 1
    yield running
    running.stop()


def post(service, name: str, data: bytes, platform: str = "platform-a"):
    with service.as_("platform", platform) as client:
        return client.post("/match/video", files={"file": (name, data)}, params={"mask": True})


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
    answer = post(service, "long.mkv", write_video(tmp_path / "l.mkv", frames).read_bytes())
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


@pytest.mark.parametrize("data", [b"", b"\x00\x00\x00\x18ftypmp42" + bytes(64), b"GIF89a"])
def test_bad_videos_are_400_with_one_line(service, data: bytes) -> None:
    answer = post(service, "bad.mp4", data)
    assert answer.status_code == 400
    assert answer.json()["error"].startswith("bad.mp4: ")


def test_only_platform_keys_match(service) -> None:
    with service.as_("registrar", "helpline") as client:
        answer = client.post("/match/video", files={"file": ("a.mp4", b"x")})
    assert answer.status_code == 403
