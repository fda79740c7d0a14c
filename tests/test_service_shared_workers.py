"""`counterfake serve --workers N`: N processes forked from one loaded index serve one port.

Each worker matches what is registered after the fork (it follows the change feed like any
worker), a worker that dies is replaced, and stopping the service stops every worker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from service_support import (
    backend_target,
    eventually,
    jpeg_bytes,
    register_photo,
    start_service,
)


@pytest.fixture(params=["sqlite", "postgresql"])
def shared(request, tmp_path):
    db = backend_target(request, tmp_path)
    service = start_service(db, tmp_path, "--workers", "2")
    yield service
    service.stop()


def workers_of(pid: int) -> set[int]:
    return {int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def test_workers_forked_before_a_registration_match_it(shared, photo):
    with shared.as_("registrar") as registrar:
        assert register_photo(registrar, "alice", photo, "photo.jpg").status_code == 200
    upload = jpeg_bytes(photo, 80)

    def match(_: int) -> tuple[int, int]:
        with shared.as_("platform") as platform:
            found = platform.post("/match/image", files={"file": ("u.jpg", upload)}).json()
            worker = platform.get("/health").json()["worker"]
        return worker, len(found["matches"])

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(match, range(24)))
    assert {found for _, found in answers} == {1}
    assert len(workers_of(shared.process.pid)) == 2
    assert {worker for worker, _ in answers} <= workers_of(shared.process.pid)


def test_a_worker_that_dies_is_replaced(shared, photo):
    before = workers_of(shared.process.pid)
    time.sleep(10)  # older than MIN_LIFETIME: a death now is not a failure at start
    killed = min(before)
    os.kill(killed, signal.SIGKILL)
    assert eventually(lambda: len(workers_of(shared.process.pid) - before) == 1, 30)
    assert killed not in workers_of(shared.process.pid)
    with shared.as_("registrar") as registrar:
        assert register_photo(registrar, "alice", photo, "photo.jpg").status_code == 200
    with shared.as_("platform") as platform:
        answer = platform.post("/match/image", files={"file": ("u.jpg", jpeg_bytes(photo))})
    assert len(answer.json()["matches"]) == 1


def test_stopping_the_service_stops_every_worker(shared):
    workers = workers_of(shared.process.pid)
    shared.process.send_signal(signal.SIGTERM)
    assert shared.process.wait(timeout=30) == 0
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]


def test_a_port_in_use_is_one_line_before_anything_is_loaded(shared, tmp_path):
    port = shared.url.rsplit(":", 1)[1]
    other = subprocess.run(
        [sys.executable, "-m", "counterfake.cli", "serve", "--db", shared.db, "--port", port,
         "--workers", "2"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert other.returncode == 2
    assert other.stderr.startswith(f"counterfake: 127.0.0.1:{port}: Address already in use")
    assert len(other.stderr.strip().splitlines()) == 1
