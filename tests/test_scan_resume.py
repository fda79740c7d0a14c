"""An interrupted scan resumes from its journal: finished files are not scanned again, and every
file appears exactly once in the final JSON."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import SHARED_DATA
from telegram_export import chat, people_photo, photo, photo_name, write_image, write_single_chat

from counterfake.cli import main
from counterfake.scan import Scanner

pytestmark = pytest.mark.skipif(
    not (SHARED_DATA / "people").is_dir(), reason="needs the shared data (COUNTERFAKE_SHARED_DATA)"
)


@pytest.fixture()
def inputs(tmp_path) -> tuple[str, list[str]]:
    """A registry with one photo, and what to scan: a folder and a Telegram export."""
    first, _ = people_photo(10, width=240)
    registered = write_image(tmp_path / "mine" / "me.jpg", first)
    db = str(tmp_path / "r.db")
    assert main(["register", str(registered), "--subject", "alice", "--db", db]) == 0
    folder = tmp_path / "folder"
    for number in range(11, 23):
        write_image(folder / f"{number}.jpg", people_photo(number, width=240)[0])
    write_image(folder / "copy.jpg", first)
    export = tmp_path / "export"
    messages = []
    for message_id, number in enumerate(range(23, 27), start=1):
        write_image(export / "photos" / photo_name(message_id), people_photo(number, width=240)[0])
        messages.append(photo(message_id, f"photos/{photo_name(message_id)}"))
    messages.append(photo(9, "../folder/11.jpg"))  # refused: an error result, journalled too
    write_single_chat(export, chat("C", "public_channel", 5, messages))
    return db, [str(folder), str(export)]


def scanned_paths(document: dict) -> list[str]:
    return [result["path"] for result in document["results"]]


def test_an_interrupted_scan_resumes_without_redoing_or_duplicating(tmp_path, inputs, monkeypatch):
    db, paths = inputs
    out = tmp_path / "out.json"
    command = ["scan", *paths, "--db", db, "--json", str(out), "--workers", "1"]
    real_scan_file = Scanner.scan_file
    calls: list[str] = []

    def interrupted_after_five(self, path, masks_dir=None):
        if len(calls) == 5:
            raise KeyboardInterrupt  # what Ctrl-C does in the middle of a file
        calls.append(path)
        return real_scan_file(self, path, masks_dir)

    monkeypatch.setattr(Scanner, "scan_file", interrupted_after_five)
    assert main(command) == 130
    first = json.loads(out.read_text())
    journal = Path(f"{out}.journal")
    assert first["interrupted"] is True and len(first["results"]) == 5
    assert len(journal.read_text().splitlines()) == 1 + 5  # the header, then one line a result

    resumed_calls: list[str] = []

    def counted(self, path, masks_dir=None):
        resumed_calls.append(path)
        return real_scan_file(self, path, masks_dir)

    monkeypatch.setattr(Scanner, "scan_file", counted)
    assert main(command) == 0

    final = json.loads(out.read_text())
    assert not journal.exists() and final["interrupted"] is False
    assert len(calls) + len(resumed_calls) == 17 and not set(calls) & set(resumed_calls)
    assert Counter(scanned_paths(final)).most_common(1)[0][1] == 1
    assert len(final["results"]) == 18  # 13 files, 4 export photos, 1 refused path

    fresh = tmp_path / "fresh.json"
    assert main(["scan", *paths, "--db", db, "--json", str(fresh), "--workers", "1"]) == 0
    assert final["results"] == json.loads(fresh.read_text())["results"]
    assert final["telegram"] == json.loads(fresh.read_text())["telegram"]


def run_scan(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "counterfake.cli", "scan", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COUNTERFAKE_DB": ""},
    )


@pytest.mark.parametrize(
    "stop, workers",
    [(signal.SIGKILL, "1"), (signal.SIGINT, "2")],
    ids=["SIGKILL", "Ctrl-C with two workers"],
)
def test_a_stopped_scan_resumes_from_its_journal(tmp_path, inputs, stop, workers):
    db, paths = inputs
    out = tmp_path / "out.json"
    journal = Path(f"{out}.journal")
    scan = run_scan(*paths, "--db", db, "--json", str(out), "--workers", workers)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and scan.poll() is None:
        if journal.exists() and len(journal.read_text().splitlines()) >= 4:
            break
        time.sleep(0.02)
    assert scan.poll() is None, "the scan ended before it could be stopped"
    scan.send_signal(stop)
    _, stderr = scan.communicate(timeout=60)
    kept = len(journal.read_text().splitlines()) - 1
    assert 3 <= kept < 18
    if stop == signal.SIGINT:
        assert scan.returncode == 130 and "run the same command again" in stderr
        assert json.loads(out.read_text())["interrupted"] is True
    else:
        assert not out.exists()
        with open(journal, "a") as stream:
            stream.write('{"path": "/half/written')  # killed in the middle of a line

    resumed = run_scan(*paths, "--db", db, "--json", str(out), "--workers", "2")
    _, stderr = resumed.communicate(timeout=300)

    assert resumed.returncode == 0, stderr
    assert f"resuming: {kept} result(s)" in stderr
    final = json.loads(out.read_text())
    assert final["interrupted"] is False
    assert len(final["results"]) == 18 and len(set(scanned_paths(final))) == 18
    assert not journal.exists()
    assert [m["kind"] for r in final["results"] for m in r["matches"]] == ["repost"]


def test_a_journal_left_by_other_inputs_is_kept_and_the_scan_refused(tmp_path, inputs, capsys):
    db, paths = inputs
    out = tmp_path / "out.json"
    journal = Path(f"{out}.journal")
    journal.write_text(
        json.dumps({"counterfake_journal": 1, "scan": {"inputs": ["/elsewhere"]}}) + "\n"
    )
    before = journal.read_bytes()

    assert main(["scan", *paths, "--db", db, "--json", str(out), "--workers", "1"]) == 2

    error = capsys.readouterr().err.strip()
    assert str(journal) in error and "other inputs" in error and "\n" not in error
    assert journal.read_bytes() == before and not out.exists()


def test_a_file_that_is_not_a_journal_is_not_overwritten(tmp_path, inputs, capsys):
    db, paths = inputs
    out = tmp_path / "out.json"
    Path(f"{out}.journal").write_text("my notes\n")

    assert main(["scan", *paths, "--db", db, "--json", str(out), "--workers", "1"]) == 2

    assert "not a counterfake scan journal" in capsys.readouterr().err
    assert Path(f"{out}.journal").read_text() == "my notes\n"


def test_a_resumed_scan_keeps_the_masks_its_report_and_evidence_need(tmp_path, monkeypatch):
    original, garment = people_photo(10, width=240)
    db = str(tmp_path / "r.db")
    registered = write_image(tmp_path / "mine" / "me.jpg", original)
    assert main(["register", str(registered), "--subject", "alice", "--db", db]) == 0
    edited = original.copy()
    edited[garment] = (edited[garment] // 4 + 150).astype(edited.dtype)  # a harmless recolour
    folder = tmp_path / "folder"
    write_image(folder / "0-derivative.jpg", edited)
    for number in range(11, 15):
        write_image(folder / f"{number}.jpg", people_photo(number, width=240)[0])
    out, evidence = tmp_path / "out.json", tmp_path / "evidence"
    command = ["scan", str(folder), "--db", db, "--json", str(out), "--workers", "1"]
    real_scan_file = Scanner.scan_file
    calls: list[str] = []

    def interrupted_after_two(self, path, masks_dir=None):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(path)
        return real_scan_file(self, path, masks_dir)

    monkeypatch.setattr(Scanner, "scan_file", interrupted_after_two)
    assert main([*command, "--report", str(tmp_path / "partial.html")]) == 130
    assert any(Path(f"{out}.masks").iterdir())  # kept for the resumed run

    monkeypatch.setattr(Scanner, "scan_file", real_scan_file)
    assert main([*command, "--evidence", str(evidence)]) == 0

    assert not Path(f"{out}.masks").exists() and not Path(f"{out}.journal").exists()
    (match,) = json.loads(out.read_text())["results"][0]["matches"]
    assert match["kind"] == "manipulated" and match["mask"] is None  # the scratch mask is gone
    assert main(["verify-evidence", str(evidence)]) == 0
    lines = [json.loads(line) for line in (evidence / "manifest.jsonl").read_text().splitlines()]
    findings = [f for line in lines for f in line.get("findings", [])]
    assert [f["kind"] for f in findings] == ["manipulated"] and findings[0]["mask_sha256"]
