"""``serve --cluster``, ``scan --cluster`` and ``pairs --cluster`` against a real two-node Ray
cluster on loopback: the service answers while a node is killed under it, and a scan or a pairs
run gives one machine's results."""

from __future__ import annotations

import importlib.util
import json
import threading
import time

import cv2
from cluster_support import edited, register_people, save_jpeg, unregistered
from conftest import run_cli
from service_support import start_service

from counterfake.registry import Registry
from counterfake.signature.extract import make_signature

REGISTERED = range(60, 72)


def jpeg_bytes(rgb) -> bytes:
    return cv2.imencode(".jpg", rgb[:, :, ::-1])[1].tobytes()


def test_the_service_answers_throughout_a_node_killed_while_matching(
    ray_cluster, postgres_db, tmp_path
):
    register_people(postgres_db, REGISTERED)
    doomed = ray_cluster.add_node()  # a third node, so the session's two stay for other tests
    service = start_service(
        postgres_db, tmp_path, "--cluster", ray_cluster.client_address, "--shards", "6"
    )
    uploads = {n: jpeg_bytes(edited(n, "blurred")) for n in (61, 66, 70)}
    answers: list[tuple[int, int, list[str]]] = []
    stop = threading.Event()

    def keep_matching() -> None:
        with service.as_("platform") as client:
            while not stop.is_set():
                for number, data in uploads.items():
                    reply = client.post("/match/image", files={"file": ("up.jpg", data)})
                    labels = [m["photo"] for m in reply.json().get("matches", [])]
                    answers.append((number, reply.status_code, labels))

    def answered(count: int) -> None:
        """Wait until ``count`` answers came (a loaded machine answers slower, not less)."""
        deadline = time.monotonic() + 180
        while len(answers) < count and time.monotonic() < deadline and matching.is_alive():
            time.sleep(0.1)

    matching = threading.Thread(target=keep_matching)
    try:
        matching.start()
        answered(3)
        ray_cluster.cluster.remove_node(doomed, allow_graceful=False)
        killed_at = len(answers)
        newcomer = make_signature(edited(80, "recompressed"), "people/0080.jpg", "8" * 64)
        with Registry(postgres_db) as registry:  # registered while the shards reload
            registry.register("bob", [newcomer])
        answered(killed_at + 6)
        stop.set()
        matching.join(timeout=60)
        assert len(answers) > killed_at + 3, "matching went on after the node was killed"
        first = {number: labels for number, _, labels in reversed(answers)}
        assert len({label for labels in first.values() for label in labels}) == 3
        for number, status, labels in answers:  # the platform sees opaque references
            assert status == 200 and labels == first[number] and len(labels) == 1
        with service.as_("platform") as client:
            upload = {"file": ("up.jpg", jpeg_bytes(edited(80, "blurred")))}
            reply = client.post("/match/image", files=upload)
        assert len(reply.json()["matches"]) == 1
    finally:
        stop.set()
        service.stop()


def test_a_cluster_scan_gives_the_results_of_a_scan_on_one_machine(ray_cluster, tmp_path):
    db = str(tmp_path / "registry.db")
    register_people(db, range(90, 100))
    folder = tmp_path / "downloaded"
    for number in (91, 95):
        for how in ("blurred", "crop"):
            save_jpeg(folder / f"{number}-{how}.jpg", edited(number, how))
    save_jpeg(folder / "stranger.jpg", unregistered(12))
    (folder / "broken.jpg").write_bytes(b"not an image")
    here = run_cli("scan", str(folder), "--db", db, "--json", "one.json", cwd=tmp_path)
    assert here.returncode == 0, here.stderr
    spread = run_cli(
        "scan", "downloaded", "--db", db, "--json", "cluster.json",
        "--cluster", ray_cluster.address, cwd=tmp_path,
    )  # fmt: skip
    assert spread.returncode == 0, spread.stderr
    one = json.loads((tmp_path / "one.json").read_text())["results"]
    cluster = json.loads((tmp_path / "cluster.json").read_text())["results"]
    assert [_found(r) for r in cluster] == [_found(r) for r in one]
    assert sum(bool(r["matches"]) for r in cluster) == 4
    assert "broken.jpg: " in spread.stderr


def test_pairs_on_a_cluster_are_the_pairs_found_on_one_machine(ray_cluster, tmp_path):
    folder = tmp_path / "collection"
    for number in (91, 95):
        save_jpeg(folder / f"{number}.jpg", edited(number, "recompressed"))
        save_jpeg(folder / f"{number}-blurred.jpg", edited(number, "blurred"))
        save_jpeg(folder / f"{number}-crop.jpg", edited(number, "crop"))
    save_jpeg(folder / "stranger.jpg", unregistered(12))
    (folder / "broken.jpg").write_bytes(b"not an image")
    here = run_cli("pairs", "collection", "--json", "one.json", cwd=tmp_path)
    assert here.returncode == 0, here.stderr
    spread = run_cli(
        "pairs", "collection", "--json", "cluster.json",
        "--cluster", ray_cluster.address, "--shards", "3", cwd=tmp_path,
    )  # fmt: skip
    assert spread.returncode == 0, spread.stderr
    one = json.loads((tmp_path / "one.json").read_text())
    cluster = json.loads((tmp_path / "cluster.json").read_text())
    assert cluster == one
    found = {(p["source"], p["derivative"], p["kind"]) for p in cluster["pairs"]}
    assert {(s, d) for s, d, _ in found} == {
        (f"collection/{n}.jpg", f"collection/{n}-{how}.jpg")
        for n in (91, 95)
        for how in ("blurred", "crop")
    }
    assert ("collection/91.jpg", "collection/91-blurred.jpg", "manipulated") in found
    assert [e["path"] for e in cluster["errors"]] == ["collection/broken.jpg"]
    assert "collection/broken.jpg: " in spread.stderr


def test_a_pairs_task_reads_the_signatures_of_its_own_run(ray_cluster):
    import ray

    from counterfake.cluster.pairs import CollectionView

    first, second = (make_signature(edited(n, "crop"), f"{n}.jpg", f"{n:064x}") for n in (91, 95))
    views = [
        CollectionView([], 1, {0: ray.put({0: signature})}, run)
        for signature, run in ((first, "one"), (second, "two"))
    ]
    assert views[0].signature(0).label == "91.jpg"
    assert views[1].signature(0).label == "95.jpg"  # the same key, in a later run


def test_an_unreachable_cluster_is_named_in_one_line(tmp_path):
    db = str(tmp_path / "registry.db")
    register_people(db, range(1, 2))
    problem = "ray://127.0.0.1:9: cannot reach the Ray cluster"
    if importlib.util.find_spec("ray") is None:  # the default install: how to get Ray
        problem = "--cluster needs Ray: pip install 'counterfake[cluster]'"
    commands = (
        ["scan", str(tmp_path), "--db", db],
        ["serve", "--port", "1", "--db", db],
        ["pairs", str(tmp_path), "--json", "pairs.json"],
    )
    for command in commands:
        done = run_cli(*command, "--cluster", "ray://127.0.0.1:9", cwd=tmp_path)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1, done.stderr
        assert lines[0].startswith(f"counterfake: {problem}")


def _found(result: dict) -> tuple:
    name = result["path"].rsplit("/", 1)[-1]
    matches = [(match["photo"], match["kind"]) for match in result["matches"]]
    return name, result.get("error") is not None, matches
