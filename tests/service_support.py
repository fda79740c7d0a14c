"""The real service for the tests: ``counterfake serve`` (uvicorn) on 127.0.0.1, a free port.

Each running service is its own process, as in a deployment, so two of them on one registry are
two workers following the same change feed. Keys are made in the registry's database with the
key store, as ``counterfake keys create`` does.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest

from counterfake.db import connect
from counterfake.keys import KeyStore
from counterfake.signature import cfsig
from counterfake.signature.extract import make_signature

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
ROLES = ("admin", "registrar", "platform", "reviewer")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class RunningService:
    db: str
    url: str
    process: subprocess.Popen
    log: Path
    keys: dict[str, str] = field(default_factory=dict)  # "role:name" -> secret

    def client(self, secret: str | None = None, timeout: float = 60.0) -> httpx.Client:
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def as_(self, role: str, name: str | None = None) -> httpx.Client:
        """A client holding the key of ``role`` (made on first use) for organisation ``name``."""
        name = name or f"{role}-a"
        label = f"{role}:{name}"
        if label not in self.keys:
            self.keys[label] = make_key(self.db, role, name)
        return self.client(self.keys[label])

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def make_key(db: str, role: str, name: str) -> str:
    with connect(db) as database:
        _, secret = KeyStore(database).create(role, name)
    return secret


def start_service(db: str, log_dir: Path, *options: str) -> RunningService:
    """Start ``counterfake serve`` and wait until /health answers."""
    port = free_port()
    log = log_dir / f"serve-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "counterfake.cli",
                "serve",
                "--db",
                db,
                "--port",
                str(port),
                *options,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    service = RunningService(db, f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the service exited ({process.returncode}): {log.read_text()}")
        try:
            if httpx.get(f"{service.url}/health", timeout=2).status_code == 200:
                return service
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    service.stop()
    raise RuntimeError(f"the service did not start within 90 s: {log.read_text()}")


def eventually(condition, seconds: float = 10.0) -> bool:
    """Whether ``condition()`` became true within ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def backend_target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh registry on the backend named by ``request.param``."""
    if request.param == "sqlite":
        return str(tmp_path / "registry.db")
    return request.getfixturevalue("postgres_server").new_database()


def cfsig_bytes(rgb: np.ndarray, label: str, sha256: str | None = None) -> bytes:
    """What ``counterfake hash`` writes for one photo."""
    sha256 = sha256 or hashlib.sha256(label.encode()).hexdigest()
    return cfsig.dumps([make_signature(rgb, label, sha256)])


def cfsig_with_header(header: bytes, payload: bytes = b"") -> bytes:
    """A .cfsig file whose header is ``header`` as given, with a valid checksum: what a hostile
    client can build by hand."""
    body = cfsig.MAGIC + struct.pack("<I", len(header)) + header + payload
    return body + hashlib.sha256(body).digest()


def cfsig_edited(data: bytes, edit: Callable[[dict], object]) -> bytes:
    """A .cfsig file with its header changed by ``edit`` and a valid checksum again."""
    start = len(cfsig.MAGIC) + 4
    (length,) = struct.unpack_from("<I", data, len(cfsig.MAGIC))
    header = json.loads(data[start : start + length])
    edit(header)
    return cfsig_with_header(json.dumps(header).encode(), data[start + length : -32])


NESTED_JSON = b"[" * 100_000 + b"]" * 100_000


def register_photo(
    registrar: httpx.Client, subject: str, rgb: np.ndarray, label: str
) -> httpx.Response:
    """As a helpline would: create the subject, upload the photo's signature."""
    registrar.post("/subjects", json={"name": subject})
    return registrar.post(
        f"/subjects/{subject}/signatures", files={"file": ("p.cfsig", cfsig_bytes(rgb, label))}
    )


def jpeg_bytes(rgb: np.ndarray, quality: int = 92) -> bytes:
    import cv2

    ok, data = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return data.tobytes()
