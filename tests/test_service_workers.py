"""Two service processes on one registry: what one registers or withdraws, the other follows.

The second worker learns of changes through the registry's change feed (LISTEN/NOTIFY on
PostgreSQL, polling on SQLite) and, before every match, by reading the feed's head: a change
answered before a match request is in effect for it, in the worker that did not make it too.
How fast the feed thread alone brings changes is measured in bench/service_load.py.
"""

from __future__ import annotations

import pytest
from service_support import EXAMPLES, eventually, register_photo, start_service


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


def test_a_registration_and_a_withdrawal_reach_the_other_worker(two_workers, photo):
    first, second = two_workers
    repost = (EXAMPLES / "downloaded" / "repost.jpg").read_bytes()
    assert matches(second, repost) == []
    with first.as_("registrar") as registrar:
        answer = register_photo(registrar, "alice", photo, "p")
        assert answer.json()["added"] == 1
    assert matches(first, repost)  # the worker that registered answers at once
    assert len(matches(second, repost)) == 1  # ... and so does the other one
    assert second.client().get("/health").json()["photos"] == 1

    with first.as_("registrar") as registrar:
        assert registrar.delete("/subjects/alice").json()["deleted_signatures"] == 1
    assert matches(first, repost) == []
    # no match request in between: the feed thread alone drops it from the other worker
    assert eventually(lambda: second.client().get("/health").json()["photos"] == 0)
    assert matches(second, repost) == []
