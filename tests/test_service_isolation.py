"""One organisation can neither hide, read nor poison another's data, and withdrawal leaves no
copy behind: against the real server, on SQLite and on PostgreSQL (issue 17)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone

import pytest
from service_support import EXAMPLES, register_photo, start_service

_names = itertools.count()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def service(request, tmp_path_factory):
    if request.param == "sqlite":
        db = str(tmp_path_factory.mktemp("service") / "registry.db")
    else:
        db = request.getfixturevalue("postgres_server").new_database()
    running = start_service(db, tmp_path_factory.mktemp("logs"))
    yield running
    running.stop()


def fresh(prefix: str) -> str:
    return f"{prefix}-{next(_names)}"


def repost() -> bytes:
    return (EXAMPLES / "downloaded" / "repost.jpg").read_bytes()


def record_repost(service, platform: str) -> dict:
    with service.as_("platform", platform) as client:
        answer = client.post(
            "/match/image", files={"file": ("r.jpg", repost())}, params={"record": 1}
        )
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_time_filters_honour_utc_offsets(service, photo):
    subject = fresh("offsets")
    with service.as_("registrar") as registrar:
        assert register_photo(registrar, subject, photo, "p.jpg").status_code == 200
    platform = fresh("platform")
    match_id = record_repost(service, platform)["matches"][0]["match_id"]
    with service.as_("reviewer") as reviewer:
        created = datetime.fromisoformat(reviewer.get(f"/matches/{match_id}").json()["created"])

        def listed(**bounds: datetime) -> list[int]:
            params = {name: value.isoformat() for name, value in bounds.items()}
            answer = reviewer.get("/matches", params={"platform": platform, **params})
            assert answer.status_code == 200, answer.text
            return [record["id"] for record in answer.json()]

        plus_one, minus_five = timezone(timedelta(hours=1)), timezone(timedelta(hours=-5))
        second = timedelta(seconds=1)
        assert listed(since=(created - second).astimezone(plus_one)) == [match_id]
        assert listed(until=(created + second).astimezone(minus_five)) == [match_id]
        assert listed(since=(created + second).astimezone(plus_one)) == []
        assert listed(until=(created - second).astimezone(minus_five)) == []
        naive_utc = (created - second).astimezone(UTC).replace(tzinfo=None)
        assert listed(since=naive_utc) == [match_id]


def test_an_organisation_named_with_a_slash_is_not_a_part_of_another(service, photo):
    helpline = fresh("help")
    with service.as_("registrar", helpline) as a:
        assert a.post("/subjects", json={"name": "alice"}).status_code == 201
    with service.as_("registrar", f"{helpline}/x") as x:
        assert register_photo(x, "bob", photo, "p.jpg").status_code == 200
        assert [s["subject"] for s in x.get("/subjects").json()] == ["bob"]
    with service.as_("registrar", helpline) as a:
        assert [s["subject"] for s in a.get("/subjects").json()] == ["alice"]
        assert a.delete("/subjects/x%2Fbob").status_code in (400, 404)
    with service.as_("registrar", f"{helpline}/x") as x:
        assert x.delete("/subjects/bob").json()["deleted_signatures"] == 1
