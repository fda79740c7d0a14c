"""Two service processes on one registry: what one registers or withdraws, the other follows.

The second worker learns of changes only through the registry's change feed (LISTEN/NOTIFY on
PostgreSQL, polling on SQLite). How fast is measured in bench/service_load.py; here the
bound is generous and only says that it happens, and that a withdrawn photo stops matching in
the worker that did not withdraw it.
"""

from __future__ import annotations

import time

import pytest
from service_support import EXAMPLES, register_photo, start_service


@pytest.fixture(params=["sqlite", "postgresql"])
def two_workers(request, tmp_path):
    if request.param == "sqlite":
        db = str(tmp_path / "registry.db")
    else:
        db = request.getfixturevalue("postgres_server").new_database()
    first = start_service(db, tmp_path)
    second = start_service(db, tmp_path)
    second.keys = first.keys  # one registry, one set of keys
    yield first, second
    first.stop()
    second.stop()


def matches(worker, data: bytes) -> list[dict]:
    with worker.as_("platform") as client:
        answer = client.post("/match/image", files={"file": ("r.jpg", data)})
    assert answer.status_code == 200, answer.text
    return answer.json()["matches"]


def eventually(condition, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_a_registration_and_a_withdrawal_reach_the_other_worker(two_workers, photo):
    first, second = two_workers
    repost = (EXAMPLES / "downloaded" / "repost.jpg").read_bytes()
    assert matches(second, repost) == []
    with first.as_("registrar") as registrar:
        answer = register_photo(registrar, "alice", photo, "p")
        assert answer.json()["added"] == 1
    assert matches(first, repost)  # the worker that registered answers at once
    assert eventually(lambda: len(matches(second, repost)) == 1)
    assert second.client().get("/health").json()["photos"] == 1

    with first.as_("registrar") as registrar:
        assert registrar.delete("/subjects/alice").json()["deleted_signatures"] == 1
    assert matches(first, repost) == []
    assert eventually(lambda: matches(second, repost) == [])
    assert second.client().get("/health").json()["photos"] == 0
