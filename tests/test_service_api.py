"""The service's endpoints, end to end against the real server, on SQLite and on PostgreSQL."""

from __future__ import annotations

import base64
import io
import itertools
from urllib.parse import quote

import cv2
import numpy as np
import pytest
from PIL import Image
from service_support import EXAMPLES, cfsig_bytes, jpeg_bytes, start_service

from counterfake.signature.pdq import PdqHash, pdq_hash

_names = itertools.count()


@pytest.fixture(scope="module", params=["sqlite", "postgresql", "sqlite-compact"])
def service(request, tmp_path_factory):
    """The service on each backend, and on SQLite with the compact candidate index."""
    backend, _, index = request.param.partition("-")
    if backend == "sqlite":
        db = str(tmp_path_factory.mktemp("service") / "registry.db")
    else:
        db = request.getfixturevalue("postgres_server").new_database()
    options = ("--index", index) if index else ()
    running = start_service(db, tmp_path_factory.mktemp("logs"), *options)
    yield running
    running.stop()


def example(name: str) -> bytes:
    return (EXAMPLES / "downloaded" / name).read_bytes()


def register_photo(service, photo, registrar: str = "registrar-a") -> str:
    """A new subject holding the example photo; returns the subject's name."""
    subject = f"subject-{next(_names)}"
    with service.as_("registrar", registrar) as client:
        assert client.post("/subjects", json={"name": subject}).status_code == 201
        answer = client.post(
            f"/subjects/{subject}/signatures",
            files={"file": ("photo.cfsig", cfsig_bytes(photo, "photo.jpg"))},
        )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "subject": subject,
        "added": 1,
        "already_registered": 0,
        "videos_added": 0,
    }
    return subject


def withdraw(service, subject: str, registrar: str = "registrar-a") -> None:
    with service.as_("registrar", registrar) as client:
        answer = client.delete(f"/subjects/{subject}")
    assert answer.status_code == 200, answer.text
    assert answer.json()["deleted_signatures"] == 1


def match(service, name: str, data: bytes, platform: str = "platform-a", **params) -> dict:
    with service.as_("platform", platform) as client:
        answer = client.post("/match/image", files={"file": (name, data)}, params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_registered_photo_is_found_as_repost_and_as_manipulation_with_its_mask(service, photo):
    subject = register_photo(service, photo)
    try:
        repost = match(service, "repost.jpg", example("repost.jpg"))
        [found] = repost["matches"]
        assert found["kind"] == "repost" and found["altered_fraction"] == 0
        assert found["mask"] is None and found["match_id"] is None
        assert found["subject"].startswith("s_") and subject not in str(repost)
        assert "photo.jpg" not in str(repost)  # the label stays with the helpline

        fake = match(service, "manipulated.jpg", example("manipulated.jpg"), mask="true")
        [found] = fake["matches"]
        assert found["kind"] == "manipulated" and 0.05 < found["altered_fraction"] < 0.4
        mask = np.array(Image.open(io.BytesIO(base64.b64decode(found["mask"]))))
        assert mask.shape == (640, 480) and 0.02 < (mask > 0).mean() < 0.5
        assert match(service, "unrelated.jpg", example("unrelated.jpg"))["matches"] == []
    finally:
        withdraw(service, subject)


def test_a_withdrawn_subject_stops_matching_at_once(service, photo):
    subject = register_photo(service, photo)
    assert match(service, "repost.jpg", example("repost.jpg"))["matches"]
    withdraw(service, subject)
    assert match(service, "repost.jpg", example("repost.jpg"))["matches"] == []
    with service.as_("registrar") as client:
        assert subject not in [s["subject"] for s in client.get("/subjects").json()]


def test_a_client_side_signature_matches_without_pixels(service, photo, garment):
    subject = register_photo(service, photo)
    try:
        edited = photo.copy()
        edited[garment] = cv2.GaussianBlur(photo, (0, 0), 20)[garment]
        upload = cfsig_bytes(np.ascontiguousarray(edited), "upload-1.jpg", "a" * 64)
        with service.as_("platform") as client:
            answer = client.post(
                "/match/signatures", files={"file": ("q.cfsig", upload)}, params={"mask": "true"}
            )
        assert answer.status_code == 200, answer.text
        [result] = answer.json()["results"]
        [found] = result["matches"]
        assert result["name"] == "upload-1.jpg" and found["kind"] == "manipulated"
        mask = np.array(Image.open(io.BytesIO(base64.b64decode(found["mask"]))))
        assert mask.shape == (512, 384)  # the signature's frame
        cv_unrelated = cv2.imread(str(EXAMPLES / "downloaded" / "unrelated.jpg"))[:, :, ::-1]
        stranger = cfsig_bytes(np.ascontiguousarray(cv_unrelated), "stranger.jpg")
        with service.as_("platform") as client:
            answer = client.post("/match/signatures", files={"file": ("s.cfsig", stranger)})
        assert answer.json()["results"][0]["matches"] == []
    finally:
        withdraw(service, subject)


def test_a_batch_gives_every_file_a_result_and_a_bad_file_its_own_error(service, photo):
    subject = register_photo(service, photo)
    try:
        files = [
            ("files", ("repost.jpg", example("repost.jpg"))),
            ("files", ("broken.jpg", example("repost.jpg")[:300])),
            ("files", ("unrelated.jpg", example("unrelated.jpg"))),
        ]
        with service.as_("platform") as client:
            answer = client.post("/match/batch", files=files)
        assert answer.status_code == 200, answer.text
        repost, broken, unrelated = answer.json()["results"]
        assert repost["matches"][0]["kind"] == "repost"
        assert broken["error"].startswith("broken.jpg") and broken["matches"] == []
        assert unrelated["error"] is None and unrelated["matches"] == []
    finally:
        withdraw(service, subject)


def test_recorded_matches_are_reviewed_and_a_rejected_image_is_not_raised_again(service, photo):
    subject = register_photo(service, photo)
    try:
        first = match(service, "repost.jpg", example("repost.jpg"), record="true")
        match_id = first["matches"][0]["match_id"]
        assert isinstance(match_id, int)
        with service.as_("reviewer") as client:
            listed = client.get(
                "/matches", params={"status": "pending", "subject": f"registrar-a/{subject}"}
            )
            assert [m["id"] for m in listed.json()] == [match_id]
            record = listed.json()[0]
            assert record["platform"] == "platform-a" and record["photo"] == "photo.jpg"
            assert client.get("/matches", params={"platform": "nobody"}).json() == []
            assert client.get("/matches", params={"since": "2999-01-01T00:00:00"}).json() == []
            decided = client.post(f"/matches/{match_id}/decision", json={"status": "rejected"})
            assert decided.status_code == 200 and decided.json()["status"] == "rejected"
        # The same bytes, and a near-identical re-encode of them, are no longer raised...
        assert match(service, "repost.jpg", example("repost.jpg"))["matches"] == []
        rgb = cv2.imread(str(EXAMPLES / "downloaded" / "repost.jpg"))[:, :, ::-1]
        again = jpeg_bytes(np.ascontiguousarray(rgb), 95)
        assert match(service, "again.jpg", again)["matches"] == []
        # ...while a different derivative of the same photo still is.
        fake = match(service, "manipulated.jpg", example("manipulated.jpg"))
        assert fake["matches"][0]["kind"] == "manipulated"
    finally:
        withdraw(service, subject)


def test_a_platform_lists_only_its_own_matches_with_opaque_ids(service, photo):
    subject = register_photo(service, photo)
    try:
        mine = match(service, "repost.jpg", example("repost.jpg"), "platform-a", record="true")
        theirs = match(service, "fake.jpg", example("manipulated.jpg"), "platform-b", record="true")
        mine_id, theirs_id = mine["matches"][0]["match_id"], theirs["matches"][0]["match_id"]
        with service.as_("platform", "platform-a") as client:
            listed = client.get("/matches").json()
            assert mine_id in [m["id"] for m in listed] and theirs_id not in [
                m["id"] for m in listed
            ]
            assert all(m["platform"] == "platform-a" for m in listed)
            assert subject not in str(listed) and "photo.jpg" not in str(listed)
            assert client.get(f"/matches/{mine_id}").status_code == 200
            other = client.get(f"/matches/{theirs_id}")
            assert other.status_code == 404 and other.json() == {"error": f"no match {theirs_id}"}
    finally:
        withdraw(service, subject)


def test_hash_exchange_lookup_export_and_import(service, photo):
    subject = register_photo(service, photo)
    try:
        hex_hash = pdq_hash(photo).hex()
        near = PdqHash(
            bytes([PdqHash.from_hex(hex_hash).bits[0] ^ 0b111])
            + PdqHash.from_hex(hex_hash).bits[1:],
            100,
        )
        with service.as_("platform") as client:
            answer = client.get("/m/lookup", params={"signal_type": "pdq", "signal": near.hex()})
        assert answer.status_code == 200, answer.text
        [hit] = answer.json()["counterfake"]
        assert hit["distance"] == 3 and hit["bank_content_id"].startswith("p_")
        with service.as_("registrar") as client:
            exported = client.get("/exchange/export", params={"format": "hma"})
            assert exported.status_code == 200 and hex_hash in exported.text
            listed = "\n".join(f"{h:064x},100" for h in (1, 2)) + "\n"
            imported = client.post(
                "/exchange/import", files={"file": ("list.csv", listed)}, data={"source": "ncii"}
            )
            assert imported.status_code == 200, imported.text
            assert imported.json() == {"source": "ncii", "added": 2}
        with service.as_("platform") as client:
            answer = client.get("/m/lookup", params={"signal_type": "pdq", "signal": f"{3:064x}"})
        assert {m["distance"] for m in answer.json()["registrar-a/ncii"]} == {1}
    finally:
        withdraw(service, subject)


def test_health_and_metrics_report_requests_latency_and_index_size(service, photo):
    subject = register_photo(service, photo)
    try:
        health = service.client().get("/health").json()
        assert health["status"] == "ok" and health["photos"] >= 1
        match(service, "repost.jpg", example("repost.jpg"))
        text = service.client().get("/metrics").text
        assert 'counterfake_requests_total{method="POST",route="/match/image",status="200"}' in text
        assert (
            'counterfake_request_seconds_bucket{le="0.1",method="POST",route="/match/image"}'
            in text
        )
        assert f"counterfake_index_photos {float(health['photos'])}" in text
    finally:
        withdraw(service, subject)


@pytest.mark.parametrize("text", ["'; DROP TABLE photos; --", "x' OR '1'='1", "%' OR 1=1 --"])
def test_sql_strings_are_stored_and_matched_as_data_on_either_backend(service, photo, text):
    subject = register_photo(service, photo)
    try:
        with service.as_("registrar") as client:
            assert client.post("/subjects", json={"name": text}).status_code == 201
            assert text in [s["subject"] for s in client.get("/subjects").json()]
            assert client.delete(f"/subjects/{quote(text, safe='')}").status_code == 200
        with service.as_("reviewer") as client:
            for field in ("subject", "platform"):
                answer = client.get("/matches", params={field: text})
                assert answer.status_code == 200 and answer.json() == []
        assert match(service, "repost.jpg", example("repost.jpg"))["matches"]  # nothing else went
    finally:
        withdraw(service, subject)
