"""The evidence folder: written from a real scan, verified, and every kind of tampering caught."""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from reports_support import make_scan

from counterfake.cli import main
from counterfake.matching import Thresholds
from counterfake.registry import Registry
from counterfake.reports.evidence import (
    GENESIS,
    EvidenceError,
    registry_digest,
    verify_evidence,
    write_evidence,
)
from counterfake.signature.extract import make_signature


@pytest.fixture(scope="module")
def scanned(tmp_path_factory, photo, garment):
    folder = tmp_path_factory.mktemp("scan")
    return make_scan(folder, photo, garment)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, scanned) -> Path:
    db, results = scanned
    folder = tmp_path_factory.mktemp("evidence") / "ev"
    write_evidence(
        folder,
        results,
        registry=db,
        started=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        thresholds=Thresholds(),
        settings={"paths": ["downloaded"], "max_pixels": 40_000_000},
    )
    return folder


@pytest.fixture()
def evidence(tmp_path, pristine) -> Path:
    """A fresh copy to tamper with."""
    return Path(shutil.copytree(pristine, tmp_path / "ev"))


def lines_of(folder: Path) -> list[bytes]:
    return (folder / "manifest.jsonl").read_bytes().splitlines(keepends=True)


def write_lines(folder: Path, lines: list[bytes]) -> None:
    (folder / "manifest.jsonl").write_bytes(b"".join(lines))


def broken(folder: Path) -> str:
    with pytest.raises(EvidenceError) as caught:
        verify_evidence(folder)
    return str(caught.value)


def test_manifest_holds_header_files_and_end(pristine, scanned):
    _, results = scanned
    lines = [json.loads(line) for line in lines_of(pristine)]
    assert [line["seq"] for line in lines] == list(range(1, len(results) + 3))
    header, files, end = lines[0], lines[1:-1], lines[-1]
    assert header["type"] == "header" and header["tool"].startswith("counterfake ")
    assert header["thresholds"]["min_inliers"] == Thresholds().min_inliers
    assert header["registry"]["photos"] == 1 and len(header["registry"]["sha256"]) == 64
    assert header["started"] == "2026-01-02T03:04:05+00:00"
    assert [f["path"] for f in files] == [r.path for r in results]
    assert all(f["sha256"] == r.sha256 for f, r in zip(files, results, strict=True))
    assert end["files"] == len(results) and end["errors"] == 1
    assert end["matches"] == {"manipulated": 2, "repost": 1}
    fake = next(f for f in files if f["path"].endswith("b_fake.png"))
    assert fake["context"]["message_id"] == 42
    mask = fake["findings"][0]["mask"]
    assert (pristine / mask).is_file() and mask == f"masks/{fake['findings'][0]['mask_sha256']}.png"


def test_intact_evidence_verifies(pristine):
    summary = verify_evidence(pristine)
    assert summary.startswith("OK ") and "7 lines" in summary and "2 masks verified" in summary


def test_a_changed_byte_names_the_altered_line(evidence):
    lines = lines_of(evidence)
    lines[2] = lines[2].replace(b'"score":0.', b'"score":1.', 1)  # JSON stays valid
    write_lines(evidence, lines)
    assert broken(evidence).startswith("line 3: altered")


def test_a_byte_that_breaks_the_json_names_its_line(evidence):
    lines = lines_of(evidence)
    lines[3] = lines[3][:10] + b"\x00" + lines[3][11:]
    write_lines(evidence, lines)
    assert broken(evidence).startswith("line 4: not valid JSON")


def test_a_deleted_line_is_named(evidence):
    lines = lines_of(evidence)
    del lines[3]
    write_lines(evidence, lines)
    assert broken(evidence).startswith("line 4: says it is line 5")


def test_swapped_lines_are_named(evidence):
    lines = lines_of(evidence)
    lines[2], lines[3] = lines[3], lines[2]
    write_lines(evidence, lines)
    assert broken(evidence).startswith("line 3: says it is line 4")


def test_an_inserted_line_is_named(evidence):
    lines = lines_of(evidence)
    lines.insert(2, lines[2])
    write_lines(evidence, lines)
    assert broken(evidence).startswith("line 4: says it is line 3")


def test_an_altered_last_line_is_caught_by_the_anchor(evidence):
    lines = lines_of(evidence)
    lines[-1] = lines[-1].replace(b'"errors":1', b'"errors":0')
    write_lines(evidence, lines)
    assert broken(evidence).startswith("line 7: altered")


def test_lines_cut_off_the_end_are_named(evidence):
    write_lines(evidence, lines_of(evidence)[:-2])
    assert broken(evidence).startswith("line 6: missing")


def test_a_line_cut_in_half_is_named(evidence):
    data = (evidence / "manifest.jsonl").read_bytes()
    (evidence / "manifest.jsonl").write_bytes(data[:-40])
    assert broken(evidence).startswith("line 7: not valid JSON")


def test_a_missing_anchor_is_reported(evidence):
    (evidence / "manifest.sha256").unlink()
    assert broken(evidence).startswith("manifest.sha256: missing")


def test_a_modified_mask_names_the_line_that_refers_to_it(evidence):
    lines = [json.loads(line) for line in lines_of(evidence)]
    number, finding = next(
        (n, f) for n, line in enumerate(lines, 1) for f in line.get("findings", []) if f["mask"]
    )
    mask = evidence / finding["mask"]
    mask.write_bytes(mask.read_bytes() + b"\x00")
    assert (
        broken(evidence)
        == f"line {number}: mask {finding['mask']} was modified (its SHA-256 differs)"
    )
    mask.unlink()
    assert broken(evidence) == f"line {number}: mask {finding['mask']} is missing"


def test_a_rewritten_chain_fails_the_kept_hash(evidence, pristine):
    anchor = (pristine / "manifest.sha256").read_text().split()[0]
    assert verify_evidence(evidence, expect=anchor).startswith("OK ")
    with pytest.raises(EvidenceError, match="not the expected"):
        verify_evidence(evidence, expect="0" * 64)


def rechain(folder: Path, lines: list[dict]) -> None:
    """What a forger able to rewrite the whole folder does: recompute every link and the anchor."""
    raw, prev = [], GENESIS
    for seq, line in enumerate(lines, 1):
        raw.append(json.dumps({**line, "seq": seq, "prev": prev}).encode())
        prev = hashlib.sha256(raw[-1]).hexdigest()
    write_lines(folder, [line + b"\n" for line in raw])
    (folder / "manifest.sha256").write_text(f"{prev}  manifest.jsonl line {len(raw)}\n")


def test_a_mask_path_leaving_the_folder_is_refused_even_in_a_rebuilt_chain(evidence):
    lines = [json.loads(line) for line in lines_of(evidence)]
    number, finding = next(
        (n, f) for n, line in enumerate(lines, 1) for f in line.get("findings", []) if f["mask"]
    )
    finding["mask"] = "../../etc/passwd"
    rechain(evidence, lines)
    assert broken(evidence) == (
        f"line {number}: mask '../../etc/passwd' is not a file of the evidence's masks/"
    )


def test_a_rebuilt_chain_verifies_alone_but_fails_the_kept_hash(evidence, pristine):
    kept = (pristine / "manifest.sha256").read_text().split()[0]
    lines = [json.loads(line) for line in lines_of(evidence)]
    stranger = next(
        n for n, line in enumerate(lines) if line.get("path", "").endswith("stranger.jpg")
    )
    del lines[stranger]
    lines[-1]["files"] -= 1
    rechain(evidence, lines)
    assert verify_evidence(evidence).startswith("OK ")  # why the hash must be kept elsewhere
    with pytest.raises(EvidenceError, match="not the expected"):
        verify_evidence(evidence, expect=kept)


def test_existing_evidence_is_never_overwritten(pristine, scanned):
    db, results = scanned
    before = (pristine / "manifest.jsonl").read_bytes()
    with pytest.raises(FileExistsError):
        write_evidence(pristine, results, registry=db, started=datetime.now(UTC))
    assert (pristine / "manifest.jsonl").read_bytes() == before
    assert not list(pristine.parent.glob(".*partial"))


def test_verify_evidence_command_exit_codes(evidence, tmp_path, capsys):
    assert main(["verify-evidence", str(evidence)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK ") and out.count("\n") == 1
    write_lines(evidence, lines_of(evidence)[:-1])
    assert main(["verify-evidence", str(evidence)]) == 1
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith(
            "line 7: missing: manifest.sha256 records 7 lines but the manifest ends after line 6"
            " (truncated)"
        )
    )
    assert main(["verify-evidence", str(tmp_path / "nowhere")]) == 2


def test_registry_digest_follows_the_registry_contents(tmp_path, scanned, photo):
    db, _ = scanned
    copy = tmp_path / "copy.db"
    shutil.copy(db, copy)
    before = registry_digest(copy)
    assert before == registry_digest(db) and before["photos"] == 1
    with Registry(copy) as registry:
        registry.register("bea", [make_signature(photo[:, ::-1].copy(), "bea.jpg", "0" * 64)])
    after = registry_digest(copy)
    assert (after["photos"], after["subjects"]) == (2, 2) and after["sha256"] != before["sha256"]


def test_an_interrupted_scan_says_so_in_its_last_line(tmp_path, scanned):
    db, results = scanned
    write_evidence(
        tmp_path / "ev", results[:2], registry=db, started=datetime.now(UTC), interrupted=True
    )
    end = json.loads(lines_of(tmp_path / "ev")[-1])
    assert end["interrupted"] is True and end["files"] == 2
    assert verify_evidence(tmp_path / "ev").startswith("OK ")
