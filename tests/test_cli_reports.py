"""scan --report/--csv/--evidence and verify-evidence, run as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import EXAMPLES, run_cli


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cli-reports")
    done = run_cli(
        "register", str(EXAMPLES / "registered"), "--subject", "alice", "--db", "r.db", cwd=folder
    )
    assert done.returncode == 0, done.stderr
    return folder / "r.db"


def test_scan_writes_every_report_and_the_evidence_verifies(tmp_path, registry):
    done = run_cli(
        "scan",
        str(EXAMPLES / "downloaded"),
        "--db",
        str(registry),
        "--workers",
        "1",
        "--json",
        "out.json",
        "--report",
        "report.html",
        "--csv",
        "out.csv",
        "--evidence",
        "evidence",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    anchor = done.stdout.strip().splitlines()[-1].split()[-1]
    assert len(anchor) == 64
    page = (tmp_path / "report.html").read_text()
    assert page.count('<article class="card match">') == 3
    assert page.count('data-outlined="true"') == 2  # masks made for the report without --masks
    rows = (tmp_path / "out.csv").read_text(encoding="utf-8-sig").splitlines()
    assert len(rows) == 1 + 3
    # without --masks the masks were temporary: the JSON does not point at vanished files
    document = json.loads((tmp_path / "out.json").read_text())
    assert all(m["mask"] is None for r in document["results"] for m in r["matches"])
    assert len(list((tmp_path / "evidence" / "masks").iterdir())) == 2
    verified = run_cli("verify-evidence", "evidence", "--expect", anchor, cwd=tmp_path)
    assert verified.returncode == 0 and verified.stdout.startswith("OK evidence: 6 lines")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "evidence",
        "out.csv",
        "out.json",
        "report.html",
    ]


def test_tampered_evidence_fails_with_its_line(tmp_path, registry):
    assert (
        run_cli(
            "scan",
            str(EXAMPLES / "downloaded"),
            "--db",
            str(registry),
            "--workers",
            "1",
            "--evidence",
            "ev",
            cwd=tmp_path,
        ).returncode
        == 0
    )
    manifest = tmp_path / "ev" / "manifest.jsonl"
    lines = manifest.read_text().splitlines(keepends=True)
    manifest.write_text("".join(lines[:2] + lines[3:]))
    done = run_cli("verify-evidence", "ev", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip().startswith("BROKEN ev: line 3: says it is line 4")


@pytest.mark.parametrize(
    ("option", "value", "problem"),
    [
        (
            "--report",
            "missing/report.html",
            "missing/report.html: No such file or directory (its folder does not exist)",
        ),
        ("--csv", ".", ".: is a directory"),
        (
            "--evidence",
            "full",
            "full: already exists and is not an empty folder; evidence is never overwritten",
        ),
        ("--evidence", "missing/ev", "missing/ev: its parent folder does not exist"),
    ],
)
def test_an_unwritable_output_is_one_line_before_any_work(
    tmp_path, registry, option, value, problem
):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    done = run_cli(
        "scan",
        str(EXAMPLES / "downloaded"),
        "--db",
        str(registry),
        option,
        value,
        "--json",
        "out.json",
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert done.stderr == f"counterfake: {problem}\n" and done.stdout == ""
    assert not (tmp_path / "out.json").exists()  # stopped before scanning
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"


def test_verify_evidence_of_a_missing_folder_is_a_usage_error(tmp_path):
    done = run_cli("verify-evidence", "nowhere", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.strip() == "counterfake: nowhere: no such folder"
