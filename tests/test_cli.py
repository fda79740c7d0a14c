"""The command line, run as a user runs it: a real process, real files, real SQLite and
PostgreSQL."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import EXAMPLES, blur_region, jpeg, run_cli, save
from service_support import NESTED_JSON, cfsig_bytes, cfsig_edited, cfsig_with_header

from counterfake.cli import main
from counterfake.db import connect
from counterfake.registered import registry_exists
from counterfake.registry import Registry
from counterfake.signature import cfsig
from counterfake.signature.extract import make_signature


@pytest.fixture()
def downloaded(tmp_path, photo, garment) -> Path:
    """A folder of what a scan meets: a repost, a fake, strangers and broken files."""
    folder = tmp_path / "downloaded"
    save(folder / "repost.jpg", jpeg(cv2.resize(photo, (240, 320)), 70))
    save(folder / "nested" / "fake.png", blur_region(photo, garment))
    save(
        folder / "stranger.jpg",
        cv2.imread(str(EXAMPLES / "downloaded" / "unrelated.jpg"))[:, :, ::-1],
    )
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "noise.jpg").write_bytes(np.random.default_rng(0).bytes(3000))
    good = (folder / "repost.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (folder / "folder.jpg").mkdir()
    return folder


def test_register_scan_and_json_document(tmp_path, downloaded):
    db = str(tmp_path / "r.db")
    registered = run_cli(
        "register", str(EXAMPLES / "registered"), "--subject", "alice", "--db", db, cwd=tmp_path
    )
    assert registered.returncode == 0, registered.stderr
    again = run_cli(
        "register", str(EXAMPLES / "registered"), "--subject", "alice", "--db", db, cwd=tmp_path
    )
    assert "registered 0 photo(s)" in again.stdout and "1 already registered" in again.stdout

    scan = run_cli(
        "scan", str(downloaded), "--db", db, "--json", "out.json", "--masks", "masks", cwd=tmp_path
    )
    assert scan.returncode == 0, scan.stderr
    document = json.loads((tmp_path / "out.json").read_text())
    results = {Path(r["path"]).name: r for r in document["results"]}
    assert set(results) == {
        "repost.jpg",
        "fake.png",
        "stranger.jpg",
        "empty.jpg",
        "noise.jpg",
        "truncated.jpg",
    }
    assert document["interrupted"] is False

    [repost] = results["repost.jpg"]["matches"]
    assert repost["kind"] == "repost" and repost["subject"] == "alice" and repost["mask"] is None
    assert repost["photo"] == str(EXAMPLES / "registered" / "photo.jpg")
    [fake] = results["fake.png"]["matches"]
    assert fake["kind"] == "manipulated" and 0.05 < fake["altered_fraction"] < 0.4
    mask = cv2.imread(str(tmp_path / fake["mask"]), cv2.IMREAD_GRAYSCALE)
    assert mask.shape == (640, 480) and set(np.unique(mask)) == {0, 255}
    assert results["stranger.jpg"]["matches"] == [] and results["stranger.jpg"]["error"] is None
    assert len(results["repost.jpg"]["sha256"]) == 64

    for name, problem in [
        ("empty.jpg", "empty file"),
        ("noise.jpg", "not a recognised image"),
        ("truncated.jpg", "truncated"),
    ]:
        error = results[name]["error"]
        assert problem in error and name in error and "\n" not in error
        assert results[name]["matches"] == []
    assert "folder.jpg" not in results  # a folder is walked into, not read as an image
    assert "1 manipulated, 1 repost(s), 3 unreadable" in scan.stdout


def test_hash_offline_then_register_signatures_elsewhere(tmp_path, downloaded, registry_target):
    hashed = run_cli("hash", str(EXAMPLES / "registered"), "-o", "alice.cfsig", cwd=tmp_path)
    assert hashed.returncode == 0 and "no pixels" in hashed.stdout
    db = registry_target
    registered = run_cli(
        "register", "--signatures", "alice.cfsig", "--subject", "alice", "--db", db, cwd=tmp_path
    )
    assert registered.returncode == 0
    scan = run_cli("scan", str(downloaded / "repost.jpg"), "--db", db, cwd=tmp_path)
    assert "1 repost(s)" in scan.stdout


def test_bad_signature_file_is_one_line_and_changes_nothing(tmp_path):
    db = tmp_path / "r.db"
    assert (
        main(["register", str(EXAMPLES / "registered"), "--subject", "alice", "--db", str(db)]) == 0
    )
    (tmp_path / "bad.cfsig").write_bytes(b"CFSIG\x00\r\n" + b"\x00" * 100)
    result = run_cli(
        "register", "--signatures", "bad.cfsig", "--subject", "bea", "--db", str(db), cwd=tmp_path
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "bad.cfsig" in result.stderr
    assert run_cli("subjects", "--db", str(db), cwd=tmp_path).stdout.strip() == "alice\t1 photo(s)"


def test_hashing_an_image_too_thin_to_analyse_is_one_line_not_a_traceback(tmp_path):
    save(tmp_path / "thin.png", np.full((1, 700, 3), 128, np.uint8))
    result = run_cli("hash", "thin.png", "-o", "out.cfsig", cwd=tmp_path)
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == "skipped thin.png: image too thin to analyse: 700x1"


def test_deeply_nested_json_is_one_line_and_exit_2_for_signatures_and_hash_lists(tmp_path):
    (tmp_path / "n.cfsig").write_bytes(cfsig_with_header(NESTED_JSON))
    (tmp_path / "n.json").write_bytes(NESTED_JSON)
    for command in (
        ("register", "--signatures", "n.cfsig", "--subject", "s", "--db", "r.db"),
        ("exchange", "import", "n.json", "--source", "x", "--db", "r.db"),
    ):
        result = run_cli(*command, cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip().count("\n") == 0 and "nested too deeply" in result.stderr


@pytest.mark.parametrize("subject", [".", "..", "a/b", "new\nline"])
def test_a_subject_named_dot_dotdot_or_with_separators_is_refused(tmp_path, subject):
    result = run_cli(
        "register", str(EXAMPLES / "registered"), "--subject", subject, "--db", "r.db", cwd=tmp_path
    )
    assert result.returncode == 2 and "subject name" in result.stderr
    assert result.stderr.strip().count("\n") == 0 and not (tmp_path / "r.db").exists()


def test_a_signature_file_with_a_hostile_field_is_one_line_and_stores_nothing(tmp_path, photo):
    data = cfsig_bytes(photo, "p.jpg")
    edited = cfsig_edited(data, lambda h: h["signatures"][0].__setitem__("sha256", "x' OR 1=1 --"))
    (tmp_path / "x.cfsig").write_bytes(edited)
    result = run_cli(
        "register", "--signatures", "x.cfsig", "--subject", "s", "--db", "r.db", cwd=tmp_path
    )
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0
    assert "sha256 must be 64 hexadecimal digits" in result.stderr


def test_a_scan_names_every_subject_holding_a_photo_however_many_copies_are_registered(
    tmp_path, photo, downloaded
):
    signature = make_signature(photo, "viral.jpg", "0" * 64)
    flood = [replace(signature, sha256=f"{n + 1:064x}") for n in range(120)]
    cfsig.write(tmp_path / "flood.cfsig", flood)
    db = str(tmp_path / "r.db")
    for subject, source in (
        ("flood", ("--signatures", "flood.cfsig")),
        ("alice", (str(EXAMPLES / "registered"),)),
    ):
        result = run_cli("register", *source, "--subject", subject, "--db", db, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    scan = run_cli(
        "scan", str(downloaded / "repost.jpg"), "--db", db, "--json", "o.json", cwd=tmp_path
    )
    assert scan.returncode == 0, scan.stderr
    [result] = json.loads((tmp_path / "o.json").read_text())["results"]
    subjects = [match["subject"] for match in result["matches"]]
    assert len(subjects) == 121 and subjects.count("alice") == 1


def test_a_photo_whose_file_name_holds_control_characters_registers_under_an_escaped_label(
    tmp_path, photo
):
    save(tmp_path / "in" / "a\nb\u202e.jpg", photo)
    result = run_cli("register", "in", "--subject", "s", "--db", "r.db", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with Registry(tmp_path / "r.db") as registry:
        assert [p.label for p in registry.photos()] == ["in/a\\nb\\u202e.jpg"]


def test_scan_on_the_compact_index_finds_the_examples_copies(tmp_path):
    """The README's first command with ``--index compact``: the same findings as the default."""
    db = str(tmp_path / "r.db")
    registered = run_cli(
        "register", str(EXAMPLES / "registered"), "--subject", "alice", "--db", db, cwd=tmp_path
    )
    assert registered.returncode == 0, registered.stderr
    scanned = [str(EXAMPLES / "downloaded"), "--db", db, "--json", "out.json"]
    scan = run_cli("scan", *scanned, "--index", "compact", cwd=tmp_path)
    assert scan.returncode == 0, scan.stderr
    document = json.loads((tmp_path / "out.json").read_text())
    found = {
        Path(r["path"]).name: [(m["kind"], m["subject"]) for m in r["matches"]]
        for r in document["results"]
    }
    assert found == {
        "repost.jpg": [("repost", "alice")],
        "manipulated.jpg": [("manipulated", "alice")],
        "collage.jpg": [("manipulated", "alice")],
        "unrelated.jpg": [],
    }


@pytest.mark.parametrize("command", ["scan", "serve"])
def test_the_compact_index_with_a_cluster_is_refused_in_one_line(tmp_path, command):
    db = str(tmp_path / "r.db")
    run_cli(
        "register", str(EXAMPLES / "registered"), "--subject", "alice", "--db", db, cwd=tmp_path
    )
    paths = [str(EXAMPLES / "downloaded")] if command == "scan" else []
    cluster = ["--index", "compact", "--cluster", "ray://127.0.0.1:1"]
    refused = run_cli(command, *paths, "--db", db, *cluster, cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        "counterfake: --index compact cannot be used with --cluster: its shards hold the "
        "multi-index hash (--index hash)"
    )


def test_scan_without_a_registry_says_so(tmp_path):
    result = run_cli("scan", str(EXAMPLES / "downloaded"), "--db", "nothing.db", cwd=tmp_path)
    assert result.returncode == 2 and "no registry here" in result.stderr
    assert not (tmp_path / "nothing.db").exists()


def test_default_registry_is_counterfake_db_in_the_current_folder(tmp_path):
    result = run_cli("register", str(EXAMPLES / "registered"), "--subject", "alice", cwd=tmp_path)
    assert result.returncode == 0 and (tmp_path / "counterfake.db").exists()


def test_withdraw_deletes_and_scan_no_longer_matches(tmp_path, registry_target):
    db = registry_target
    run_cli(
        "register", str(EXAMPLES / "registered"), "--subject", "alice", "--db", db, cwd=tmp_path
    )
    assert "alice\t1 photo(s)" in run_cli("subjects", "--db", db, cwd=tmp_path).stdout
    assert (
        "1 signature(s) deleted"
        in run_cli("withdraw", "--subject", "alice", "--db", db, cwd=tmp_path).stdout
    )
    scan = run_cli("scan", str(EXAMPLES / "downloaded"), "--db", db, cwd=tmp_path)
    assert "0 manipulated, 0 repost(s)" in scan.stdout


def registry_state(target: str) -> tuple:
    """(integrity, photos, subjects); PostgreSQL checks its own integrity on every write.

    Opening the registry first gives a database that a killed run never reached its tables.
    """
    Registry(target).close()
    with connect(target) as db:
        integrity = db.execute("PRAGMA integrity_check")[0][0] if db.backend == "sqlite" else "ok"
        return (
            integrity,
            db.execute("SELECT COUNT(*) FROM photos")[0][0],
            db.execute("SELECT COUNT(*) FROM subjects")[0][0],
        )


def wait_for_results(journal: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    """Until the scan has finished a few files (its journal holds them), however busy the
    machine: interrupting it earlier would test nothing."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if journal.exists() and journal.read_text().count("\n") >= 3:
            return
        time.sleep(0.05)
    raise AssertionError(f"the scan finished no file in {timeout} s (exit {process.poll()})")


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill"])
def test_interrupted_scan_leaves_the_registry_intact(tmp_path, photo, stop, registry_target):
    db = registry_target
    assert (
        main(["register", str(EXAMPLES / "registered"), "--subject", "alice", "--db", str(db)]) == 0
    )
    before = registry_state(db)
    many = tmp_path / "many"
    for i in range(300):
        save(many / f"{i:03d}.jpg", jpeg(np.roll(photo, i, axis=1), 80))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "counterfake.cli",
            "scan",
            str(many),
            "--db",
            str(db),
            "--json",
            "out.json",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    wait_for_results(tmp_path / "out.json.journal", process)
    process.send_signal(stop)
    process.wait(timeout=60)
    assert registry_state(db) == before == ("ok", 1, 1)
    if stop == signal.SIGINT:
        assert process.returncode == 130
        document = json.loads((tmp_path / "out.json").read_text())
        assert document["interrupted"] is True
        assert 0 < len(document["results"]) < 300


def test_killed_registration_registers_all_or_nothing(tmp_path, photo, registry_target):
    db = registry_target
    photos = tmp_path / "photos"
    for i in range(60):
        save(photos / f"{i:02d}.jpg", jpeg(np.roll(photo, 7 * i, axis=0), 85))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "counterfake.cli",
            "register",
            str(photos),
            "--subject",
            "alice",
            "--db",
            str(db),
        ],
        cwd=tmp_path,
    )
    time.sleep(1.5)
    process.kill()
    process.wait(timeout=60)
    if registry_exists(db):
        integrity, photos_count, _ = registry_state(db)
        assert integrity == "ok" and photos_count in (0, 60)


def test_unwritable_output_is_one_line_and_exit_2(tmp_path):
    db = str(tmp_path / "r.db")
    assert main(["register", str(EXAMPLES / "registered"), "--subject", "alice", "--db", db]) == 0
    result = run_cli(
        "scan",
        str(EXAMPLES / "downloaded"),
        "--db",
        db,
        "--json",
        "no/such/dir/out.json",
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "No such file or directory" in result.stderr and result.stderr.count("\n") == 1
