"""Security of the service: keys, roles, isolation between organisations, hostile input.

Every test talks to the real server. The role tests are parametrised over the endpoints the
application declares, with the roles each one admits, so a new endpoint is covered as soon as
it exists.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from urllib.parse import quote

import cv2
import httpx
import numpy as np
import pytest
from old_signatures import old_dumps
from service_support import (
    EXAMPLES,
    NESTED_JSON,
    cfsig_bytes,
    cfsig_edited,
    cfsig_with_header,
    make_key,
    register_photo,
    start_service,
)

from counterfake.service.app import ROUTERS, roles_of
from counterfake.signature import cfsig
from counterfake.signature.extract import make_signature

ROLES = ("admin", "registrar", "platform", "reviewer")
ENDPOINTS = [
    (method, route.path, tuple(roles_of(route)))
    for router in ROUTERS
    for route in router.routes
    for method in sorted(route.methods)
]
HOSTILE = [
    "'; DROP TABLE photos; --",
    "x' OR '1'='1",
    "../../../../etc/passwd",
    "..\\..\\windows\\win.ini",
    "%00nul",
    "ünïcødé \u202e gnp.exe",
    "a" * 150,
]


def concrete(path: str) -> str:
    return path.replace("{key_id}", "1").replace("{match_id}", "1").replace("{subject}", "nobody")


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    running = start_service(
        str(tmp_path_factory.mktemp("service") / "registry.db"),
        tmp_path_factory.mktemp("logs"),
        "--max-body-mb",
        "1",
    )
    yield running
    running.stop()


def call(client: httpx.Client, method: str, path: str) -> httpx.Response:
    return client.request(method, concrete(path))


def test_the_role_table_covers_every_endpoint_of_the_openapi_document(service):
    document = service.client().get("/openapi.json").json()
    declared = {
        (method.upper(), path, tuple(operation["x-roles"]))
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }
    public = {(m, p, r) for m, p, r in declared if r == ("public",)}
    assert {(m, p) for m, p, _ in public} == {("GET", "/health"), ("GET", "/metrics")}
    assert declared - public == set(ENDPOINTS)


@pytest.mark.parametrize(("method", "path", "roles"), ENDPOINTS)
def test_every_endpoint_refuses_missing_wrong_and_revoked_keys(service, method, path, roles):
    for headers in ({}, {"Authorization": "Bearer cfk_wrong"}, {"Authorization": "Basic eA=="}):
        answer = service.client().request(method, concrete(path), headers=headers)
        assert answer.status_code == 401, (headers, answer.text)
        assert answer.json()["error"] in (
            "missing API key (Authorization: Bearer <key>)",
            "unknown or revoked API key",
        )
    with connect_keys(service) as keys:
        key, secret = keys.create(roles[0], "soon-revoked")
        keys.revoke(key.id)
    answer = call(service.client(secret), method, path)
    assert answer.status_code == 401 and answer.json() == {"error": "unknown or revoked API key"}


@pytest.mark.parametrize(
    ("method", "path", "role"),
    [(m, p, role) for m, p, roles in ENDPOINTS for role in ROLES if role not in roles],
)
def test_every_endpoint_refuses_a_key_of_another_role(service, method, path, role):
    answer = call(service.as_(role), method, path)
    assert answer.status_code == 403, answer.text
    assert answer.json()["error"].startswith(f"a {role} key may not do this")


def connect_keys(service):
    from contextlib import contextmanager

    from counterfake.db import connect
    from counterfake.keys import KeyStore

    @contextmanager
    def opened():
        with connect(service.db) as database:
            yield KeyStore(database)

    return opened()


def test_a_registrar_cannot_see_extend_or_withdraw_another_registrars_subject(service, photo):
    with service.as_("registrar", "helpline-a") as a:
        assert a.post("/subjects", json={"name": "alice"}).status_code == 201
    with service.as_("registrar", "helpline-b") as b:
        assert b.get("/subjects").json() == []
        upload = {"file": ("p.cfsig", cfsig_bytes(photo, "p.jpg"))}
        assert b.post("/subjects/alice/signatures", files=upload).status_code == 404
        assert b.delete("/subjects/alice").status_code == 404
        assert b.post("/subjects", json={"name": "alice"}).status_code == 201  # her own alice
    with service.as_("registrar", "helpline-a") as a:
        assert [s["subject"] for s in a.get("/subjects").json()] == ["alice"]
        assert a.post("/subjects", json={"name": "alice"}).status_code == 409


def test_a_platform_never_reads_another_platforms_match(service, photo):
    with service.as_("registrar") as registrar:
        register_photo(registrar, "isolated", photo, "p.jpg")
    repost = (EXAMPLES / "downloaded" / "repost.jpg").read_bytes()
    with service.as_("platform", "platform-b") as b:
        answer = b.post("/match/image", files={"file": ("r.jpg", repost)}, params={"record": 1})
        match_id = answer.json()["matches"][0]["match_id"]
    with service.as_("platform", "platform-a") as a:
        assert a.get(f"/matches/{match_id}").status_code == 404
        assert match_id not in [m["id"] for m in a.get("/matches").json()]
        assert a.get("/matches", params={"platform": "platform-b"}).json() == []
        assert a.get("/matches", params={"subject": "registrar-a/isolated"}).status_code == 403


def test_an_oversized_body_is_refused_with_413_declared_or_streamed(service):
    big = b"\xff\xd8" + b"\0" * (1024 * 1024 + 10)
    with service.as_("platform") as client:
        answer = client.post("/match/image", files={"file": ("big.jpg", big)})
        assert answer.status_code == 413
        assert answer.json() == {"error": "request body over the limit of 1,048,576 bytes"}

        def chunks():  # a well-formed multipart upload with no declared length
            yield (
                b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
                b"Content-Type: image/jpeg\r\n\r\n"
            )
            for _ in range(20):
                yield b"\0" * 100_000

        streamed = client.post(
            "/match/image",
            content=chunks(),
            headers={"Content-Type": "multipart/form-data; boundary=x"},
        )
        assert streamed.status_code == 413


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares a huge image: a decompression bomb's calling card."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\0" * 1000)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("name", "data", "problem"),
    [
        ("bomb.png", png_declaring(50_000, 50_000), "pixels"),
        ("noise.jpg", bytes(range(256)) * 8, "bomb.png"),
        ("empty.jpg", b"", "empty"),
        ("cut.jpg", (EXAMPLES / "downloaded" / "repost.jpg").read_bytes()[:2000], "cut.jpg"),
    ],
)
def test_a_malformed_image_or_a_bomb_is_a_400_naming_the_file(service, name, data, problem):
    with service.as_("platform") as client:
        answer = client.post("/match/image", files={"file": (name, data)})
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error.startswith(name) and "\n" not in error
    if problem == "pixels":
        assert "pixels" in error


def png_of_size(width: int, height: int) -> bytes:
    ok, data = cv2.imencode(".png", np.full((height, width, 3), 128, np.uint8))
    assert ok
    return data.tobytes()


@pytest.mark.parametrize(
    ("width", "height"),
    [(513, 1), (700, 1), (800, 2), (1000, 1), (1, 1000), (5000, 8), (65000, 8)],
)
def test_an_image_too_thin_to_analyse_is_a_400_and_a_batch_answers_the_others(
    service, width, height
):
    thin = png_of_size(width, height)
    problem = f"thin.png: image too thin to analyse: {width}x{height}"
    repost = (EXAMPLES / "downloaded" / "repost.jpg").read_bytes()
    with service.as_("platform") as client:
        answer = client.post("/match/image", files={"file": ("thin.png", thin)})
        assert answer.status_code == 400 and answer.json() == {"error": problem}
        batch = client.post(
            "/match/batch", files=[("files", ("thin.png", thin)), ("files", ("r.jpg", repost))]
        )
    assert batch.status_code == 200, batch.text
    thin_result, other = batch.json()["results"]
    assert thin_result["error"] == problem
    assert other["error"] is None and other["sha256"]


@pytest.mark.parametrize(
    "data", [b"", b"CFSIG\x00\r\n" + b"\xff" * 100, b"not a signature file at all"]
)
def test_a_malformed_signature_file_is_a_400_naming_it(service, data):
    with service.as_("registrar") as registrar:
        registrar.post("/subjects", json={"name": "sigs"})
        answer = registrar.post("/subjects/sigs/signatures", files={"file": ("bad.cfsig", data)})
        assert answer.status_code == 400 and answer.json()["error"].startswith("bad.cfsig: ")
    with service.as_("platform") as platform:
        answer = platform.post("/match/signatures", files={"file": ("bad.cfsig", data)})
        assert answer.status_code == 400 and answer.json()["error"].startswith("bad.cfsig: ")


def test_deeply_nested_json_in_a_signature_header_or_a_hash_list_is_a_400_naming_it(service):
    nested = cfsig_with_header(NESTED_JSON)
    with service.as_("registrar") as registrar:
        registrar.post("/subjects", json={"name": "nested"})
        answer = registrar.post("/subjects/nested/signatures", files={"file": ("n.cfsig", nested)})
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"].startswith("n.cfsig: ") and "nested" in answer.json()["error"]
        answer = registrar.post(
            "/exchange/import", files={"file": ("n.json", NESTED_JSON)}, data={"source": "deep"}
        )
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"].startswith("n.json: ") and "nested" in answer.json()["error"]
        answer = registrar.post(
            "/subjects", content=NESTED_JSON, headers={"Content-Type": "application/json"}
        )
        assert 400 <= answer.status_code < 500, answer.text
    with service.as_("platform") as platform:
        answer = platform.post("/match/signatures", files={"file": ("n.cfsig", nested)})
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"].startswith("n.cfsig: ")


def set_first(field: str, value: object):
    return lambda header: header["signatures"][0].__setitem__(field, value)


@pytest.mark.parametrize(
    ("edit", "problem", "version"),
    [
        (set_first("label", None), "label must be text", 3),
        (set_first("label", {"a": 1}), "label must be text", 3),
        (set_first("label", "x" * 500_000), "label must be 1 to 1024 characters", 3),
        (set_first("label", ""), "label must be 1 to 1024 characters", 1),
        (set_first("label", "a\nb\x1b[31m"), "control characters", 3),
        (set_first("label", "gnp.\u202eexe"), "control characters", 1),
        (set_first("sha256", "x' OR 1=1 --"), "sha256 must be 64 hexadecimal digits", 3),
        (set_first("sha256", 12), "sha256 must be 64 hexadecimal digits", 1),
        # the fields of an old file's entry, which version 3 keeps in the entry's record
        (set_first("size", [1.5, True]), "size must be a whole number", 1),
        (set_first("pdq_quality", "90"), "pdq_quality must be a whole number", 1),
        (set_first("pdq", {"original": ["0" * 64]}), "a PDQ hash must be text", 1),
        (set_first("pdq", {"sideways": "0" * 64, "original": "0" * 64}), "PDQ orientations", 1),
        (set_first("record", [0, 10**9]), "record must be a whole number", 3),
        (set_first("record", [10, 100]), "not a counterfake signature record", 3),
    ],
)
def test_every_field_of_an_uploaded_signature_is_checked_and_a_bad_one_stores_nothing(
    service, photo, edit, problem, version
):
    signed = make_signature(photo, "p.jpg", hashlib.sha256(b"p.jpg").hexdigest())
    bad = cfsig_edited(cfsig.dumps([signed]) if version == 3 else old_dumps([signed]), edit)
    with service.as_("registrar", "checked-fields") as registrar:
        registrar.post("/subjects", json={"name": "fields"})
        answer = registrar.post("/subjects/fields/signatures", files={"file": ("x.cfsig", bad)})
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert error.startswith("x.cfsig: malformed signature entry 1") and problem in error
        assert len(error) < 400 and error.isprintable()
        assert registrar.get("/subjects").json() == [{"subject": "fields", "photos": 0}]
    with service.as_("platform") as platform:
        answer = platform.post("/match/signatures", files={"file": ("x.cfsig", bad)})
        assert answer.status_code == 400 and problem in answer.json()["error"]


@pytest.mark.parametrize("name", [".", "..", "a/b", "tab\there", "\u202egnp"])
def test_a_subject_named_dot_dotdot_or_with_separators_or_controls_is_refused(service, name):
    with service.as_("registrar", "odd-names") as registrar:
        answer = registrar.post("/subjects", json={"name": name})
        assert answer.status_code == 422 and "subject name" in answer.json()["error"]
        assert registrar.get("/subjects").json() == []


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.1/hook",
        "http://172.16.0.1/hook",
        "http://100.64.0.1/hook",
        "http://0.0.0.0/hook",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[fd00::1]/hook",
        "http://[fe80::1]/hook",
    ],
)
def test_a_webhook_at_an_internal_address_is_refused(service, url):
    with service.as_("registrar", "hooked") as registrar:
        answer = registrar.put("/webhook", json={"url": url})
        assert answer.status_code == 422, answer.text
        assert "public addresses" in answer.json()["error"]
        assert registrar.delete("/webhook").status_code == 404  # nothing was set


@pytest.mark.parametrize(
    ("role", "path"),
    [
        ("platform", "/match/image"),
        ("platform", "/match/signatures"),
        ("registrar", "/subjects/twice/signatures"),
        ("registrar", "/exchange/import"),
    ],
)
def test_two_file_parts_are_a_400_not_one_silently_dropped(service, role, path):
    repost = (EXAMPLES / "downloaded" / "repost.jpg").read_bytes()
    parts = [("file", ("a.jpg", repost)), ("file", ("b.jpg", repost))]
    with service.as_(role) as client:
        client.post("/subjects", json={"name": "twice"})
        answer = client.post(path, files=parts, data={"source": "s"})
    assert answer.status_code == 400, answer.text
    assert answer.json() == {"error": "2 'file' parts; send exactly one"}


def test_missing_or_wrongly_typed_fields_are_422_with_a_message(service):
    with service.as_("platform") as platform:
        answer = platform.post("/match/image")
        assert answer.status_code == 422 and "file" in answer.json()["error"]
        answer = platform.get("/m/lookup", params={"signal_type": "md5", "signal": "0" * 64})
        assert answer.status_code == 422 and "signal_type" in answer.json()["error"]
        answer = platform.get("/m/lookup", params={"signal_type": "pdq", "signal": "z" * 64})
        assert answer.status_code == 400 and "64 hexadecimal digits" in answer.json()["error"]
    with service.as_("reviewer") as reviewer:
        answer = reviewer.get("/matches", params={"since": "yesterday", "limit": 0})
        assert answer.status_code == 422 and "since" in answer.json()["error"]
        answer = reviewer.post("/matches/1/decision", json={"status": "maybe"})
        assert answer.status_code == 422


@pytest.mark.parametrize("text", HOSTILE)
def test_sql_and_path_strings_in_every_text_field_are_data(service, photo, text):
    """Each text field takes the string as data: stored and returned as sent, or refused with a
    4xx; never a 500, and nothing else in the database changes."""
    repost = (EXAMPLES / "downloaded" / "repost.jpg").read_bytes()
    segment = quote(text, safe="")  # as a client library sends a path parameter
    answers = []
    with service.as_("admin") as admin:
        created = admin.post("/keys", json={"role": "platform", "name": text})
        answers.append(created)
    with service.as_("registrar") as registrar:
        answers.append(registrar.post("/subjects", json={"name": text}))
        answers.append(
            registrar.post(f"/subjects/{segment}/signatures", files={"file": (text, b"x")})
        )
        answers.append(registrar.delete(f"/subjects/{segment}"))
        answers.append(registrar.put("/webhook", json={"url": text}))
        answers.append(
            registrar.post(
                "/exchange/import", files={"file": (text, f"{1:064x}\n")}, data={"source": text}
            )
        )
        answers.append(registrar.get("/exchange/export", params={"format": text}))
    with service.as_("platform") as platform:
        answers.append(platform.post("/match/image", files={"file": (text, repost)}))
        answers.append(platform.get("/m/lookup", params={"signal_type": "pdq", "signal": text}))
        answers.append(platform.get("/matches", params={"status": text}))
    with service.as_("reviewer") as reviewer:
        for field in ("status", "subject", "platform", "since", "until"):
            answers.append(reviewer.get("/matches", params={field: text}))
    assert all(a.status_code < 500 for a in answers), [(a.status_code, a.text) for a in answers]
    if created.status_code == 201:
        secret = created.json()["secret"]
        with service.client(secret) as platform:
            assert platform.get("/matches").status_code == 200
        assert created.json()["name"] == text
    if answers[1].status_code == 201:  # the subject was stored under exactly that name...
        assert answers[1].json()["subject"] == text
        assert answers[3].json() == {"subject": text, "deleted_signatures": 0}  # ...and found
    assert service.client().get("/health").json()["status"] == "ok"


def test_a_key_over_its_rate_limit_gets_429_with_retry_after(tmp_path):
    running = start_service(
        str(tmp_path / "registry.db"), tmp_path, "--rate-limit", "0.5", "--burst", "3"
    )
    try:
        secret = make_key(running.db, "reviewer", "busy")
        other = make_key(running.db, "reviewer", "calm")
        with running.client(secret) as client:
            codes = [client.get("/matches").status_code for _ in range(5)]
            assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
            answer = client.get("/matches")
            assert answer.headers["Retry-After"] == "2" and "rate limit" in answer.json()["error"]
        with running.client(other) as client:
            assert client.get("/matches").status_code == 200  # buckets are per key
    finally:
        running.stop()


def test_a_request_over_the_time_limit_is_answered_503(tmp_path):
    running = start_service(str(tmp_path / "registry.db"), tmp_path, "--timeout", "0.001")
    try:
        secret = make_key(running.db, "platform", "slow")
        image = (EXAMPLES / "downloaded" / "manipulated.jpg").read_bytes()
        with running.client(secret) as client:
            answer = client.post("/match/image", files={"file": ("m.jpg", image)})
        assert answer.status_code == 503 and "longer than 0.001 s" in answer.json()["error"]
    finally:
        running.stop()
