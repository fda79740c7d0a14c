"""Shared fixtures: the drawn example images shipped in examples/, and edits of them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from postgres_support import PostgresServer, find_bindir

from counterfake.imaging import load_image
from counterfake.index.candidates import CandidateIndex
from counterfake.matching import Matcher
from counterfake.signature.extract import make_signature

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
SHARED_DATA = Path(os.environ.get("COUNTERFAKE_SHARED_DATA", REPO.parent / "shared" / "data"))


def read_rgb(path: Path) -> np.ndarray:
    return cv2.imread(str(path))[:, :, ::-1].copy()


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(data, cv2.IMREAD_COLOR)[:, :, ::-1].copy()


def save(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), rgb[:, :, ::-1])
    return path


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    """The registered example photo (a drawing: a figure in a striped garment, 480x640)."""
    return read_rgb(EXAMPLES / "registered" / "photo.jpg")


@pytest.fixture(scope="session")
def unrelated() -> np.ndarray:
    return read_rgb(EXAMPLES / "downloaded" / "unrelated.jpg")


@pytest.fixture(scope="session")
def garment() -> np.ndarray:
    """The garment region of the example photo (bool), as drawn by examples/make_examples.py."""
    mask = np.zeros((640, 480), np.uint8)
    cv2.ellipse(mask, (200, 380), (85, 150), 0, 0, 360, 255, -1)
    return mask > 0


@pytest.fixture(scope="session")
def registered() -> tuple[np.ndarray, Matcher]:
    """A real people photo (../shared/data) and a matcher that holds only it; the tests that
    use it are skipped where the shared photos are absent."""
    photo = load_image(SHARED_DATA / "people" / "0123.jpg")
    signature = make_signature(photo, "people/0123.jpg", "0" * 64)
    index = CandidateIndex()
    index.add(1, signature)
    return photo, Matcher(index, {1: signature}.__getitem__)


def blur_region(rgb: np.ndarray, region: np.ndarray, sigma: float = 20) -> np.ndarray:
    """The harmless stand-in for regeneration: the region replaced by a heavy blur of itself."""
    edited = rgb.copy()
    edited[region] = cv2.GaussianBlur(rgb, (0, 0), sigma)[region]
    return edited


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server for the session (see postgres_support.py).

    Skipped when PostgreSQL is not installed, unless COUNTERFAKE_REQUIRE_POSTGRES=1 (CI), where
    a missing server fails instead.
    """
    bindir = find_bindir()
    if bindir is None:
        message = "PostgreSQL is not installed (initdb not on PATH nor in /usr/lib/postgresql)"
        if os.environ.get("COUNTERFAKE_REQUIRE_POSTGRES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    server = PostgresServer(bindir)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_server) -> str:
    """The URL of the session's PostgreSQL server (its maintenance database)."""
    return postgres_server.url


@pytest.fixture
def postgres_db(postgres_server) -> str:
    """The URL of a new, empty PostgreSQL database for one test."""
    return postgres_server.new_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def registry_target(request, tmp_path) -> str:
    """A registry location on each backend: a SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "registry.db")
    return request.getfixturevalue("postgres_db")


def run_cli(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the command line as a user would, in a fresh process, with no registry from the
    environment (so a test never touches the developer's own)."""
    return subprocess.run(
        [sys.executable, "-m", "counterfake.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COUNTERFAKE_DB": ""},
    )


@dataclass
class LocalRayCluster:
    """A real Ray cluster on loopback: a head node and a second node, one CPU each."""

    cluster: Any  # ray.cluster_utils.Cluster
    address: str  # its head's HOST:PORT, for a process of its own on this machine (serve, scan)
    client_address: str  # ray://127.0.0.1:PORT: Ray Client, as from a machine outside it

    def add_node(self) -> Any:
        node = self.cluster.add_node(**RAY_NODE)
        self.cluster.wait_for_nodes()
        return node


RAY_NODE = {"num_cpus": 1, "object_store_memory": 80 * 2**20}


@pytest.fixture(scope="module")
def ray_cluster():
    """Two Ray nodes started on loopback for a module's tests, this process joined as a driver.

    The processes the tests start join it with the head's address (HOST:PORT), as a driver on
    one of its machines, or through Ray Client (ray://), as from a machine outside it. The
    head's Ray Client proxy once crashed in gRPC's fork handlers while starting a client's
    server (a check failed in its poller): the head runs with gRPC's fork support off, which
    skips those handlers (the proxy's child execs at once).
    Skipped when Ray is not installed, unless COUNTERFAKE_REQUIRE_RAY=1 (CI), where it fails.
    Nodes are told dead after 1.5 s of silence (Ray's default is about 15 s), so that a test
    killing one takes seconds. Every node is stopped, and this process leaves the cluster, at
    the module's end: the tests after it fork scan workers, and a fork taken while Ray's
    threads run in this process can leave the child waiting on a lock forever (a full run
    once hung so in tests/test_video_exchange.py).
    """
    try:
        import ray
        from ray.cluster_utils import Cluster
    except ImportError:
        message = "Ray is not installed (pip install 'counterfake[cluster]')"
        if os.environ.get("COUNTERFAKE_REQUIRE_RAY") == "1":
            pytest.fail(message)
        pytest.skip(message)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        client_port = probe.getsockname()[1]
    head = {
        **RAY_NODE,
        "include_dashboard": False,
        "ray_client_server_port": client_port,
        "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 3},
    }
    fork_support = os.environ.get("GRPC_ENABLE_FORK_SUPPORT")
    os.environ["GRPC_ENABLE_FORK_SUPPORT"] = "false"  # for the nodes' processes only
    try:
        cluster = Cluster(initialize_head=True, head_node_args=head)
    finally:
        if fork_support is None:
            del os.environ["GRPC_ENABLE_FORK_SUPPORT"]
        else:
            os.environ["GRPC_ENABLE_FORK_SUPPORT"] = fork_support
    try:
        cluster.add_node(**RAY_NODE)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
        yield LocalRayCluster(cluster, cluster.address, f"ray://127.0.0.1:{client_port}")
    finally:
        ray.shutdown()
        cluster.shutdown()
