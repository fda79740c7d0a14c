"""Every file written whole goes through one atomic writer: a failure leaves the old file and
nothing beside it."""

from __future__ import annotations

import json

import pytest

from counterfake.atomic import atomic_writer
from counterfake.journal import Journal
from counterfake.reports.json_report import write_results
from counterfake.results import FileResult


def test_a_block_that_fails_leaves_the_old_file_and_no_temporary_file(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("before")
    with pytest.raises(RuntimeError), atomic_writer(target) as file:
        file.write("half of it")
        raise RuntimeError("killed")
    assert target.read_text() == "before"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_a_write_that_succeeds_replaces_the_file(tmp_path):
    target = tmp_path / "out.bin"
    with atomic_writer(target, encoding=None) as file:
        file.write(b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_an_os_error_names_the_file_asked_for_not_the_temporary_one(tmp_path):
    target = tmp_path / "missing" / "out.json"
    with pytest.raises(OSError) as caught, atomic_writer(target):
        pass
    assert caught.value.filename == str(target)


def test_the_scan_json_that_cannot_be_serialised_leaves_nothing_half_written(tmp_path):
    target = tmp_path / "scan.json"
    target.write_text("{}")
    unserialisable = FileResult("a.jpg", context={"date": object()})
    with pytest.raises(TypeError):
        write_results(target, [unserialisable], registry="r.db", interrupted=False)
    assert target.read_text() == "{}"
    assert [p.name for p in tmp_path.iterdir()] == ["scan.json"]


def test_the_journal_is_rewritten_atomically_with_its_results(tmp_path):
    output = tmp_path / "scan.json"
    journal = Journal(output, {"inputs": ["x"]})
    journal.add(FileResult("a.jpg", "ab" * 32))
    journal.close()
    resumed = Journal(output, {"inputs": ["x"]})
    resumed.close()
    lines = resumed.path.read_text().splitlines()
    assert json.loads(lines[0])["scan"] == {"inputs": ["x"]}
    assert [FileResult.from_json(json.loads(line)).path for line in lines[1:]] == ["a.jpg"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan.json.journal"]
