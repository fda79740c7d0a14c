"""The CSV: one row per match and per unreadable file, safe to open in a spreadsheet."""

from __future__ import annotations

import csv

import pytest
from reports_support import CONTEXT, HOSTILE, make_scan

from counterfake.reports.csv_report import COLUMNS, safe_cell, write_csv, write_pairs_csv
from counterfake.results import Cluster, FileResult, Finding, Pair, PairsDocument


@pytest.fixture(scope="module")
def table(tmp_path_factory, photo, garment) -> tuple[list[dict], list[dict], bytes]:
    folder = tmp_path_factory.mktemp("csv")
    _, results = make_scan(folder, photo, garment)
    write_csv(folder / "out.csv", results)
    data = (folder / "out.csv").read_bytes()
    with open(folder / "out.csv", encoding="utf-8-sig", newline="") as file:
        return results, list(csv.DictReader(file)), data


def test_starts_with_a_byte_order_mark_and_the_columns(table):
    *_, data = table
    assert data.startswith(b"\xef\xbb\xbf")
    assert data[3:].split(b"\r\n")[0].decode() == ",".join(COLUMNS)


def test_one_row_per_match_and_per_error(table):
    results, rows, _ = table
    matches = sum(len(r.matches) for r in results)
    errors = sum(1 for r in results if r.error)
    assert (matches, errors) == (3, 1)
    assert len(rows) == matches + errors
    assert [r["kind"] for r in rows if r["kind"]].count("manipulated") == 2
    error = next(r for r in rows if r["error"])
    assert error["path"].endswith("d_empty.jpg") and error["error"].endswith("empty file")


def test_chat_context_fills_its_columns(table):
    _, rows, _ = table
    fake = next(r for r in rows if r["path"].endswith("b_fake.png"))
    assert (fake["chat"], fake["message_id"], fake["date"], fake["from"]) == (
        CONTEXT["chat"]["name"],
        "42",
        CONTEXT["date"],
        CONTEXT["from"],
    )
    assert float(fake["score"]) >= 0.5 and fake["photo"] == "photos/beach <day>.jpg"
    assert any(r["path"].endswith(HOSTILE) for r in rows)


@pytest.mark.parametrize("text", ["=1+1", "+1", "-2", "@SUM(A1)", "\tx", "\rx"])
def test_formula_starts_become_text(text):
    assert safe_cell(text) == "'" + text


@pytest.mark.parametrize("value", ["photo.jpg", "", 0.93, 42, None])
def test_other_values_are_kept(value):
    assert safe_cell(value) == ("" if value is None else value)


def test_hostile_cells_are_written_as_text(tmp_path):
    results = [
        FileResult(
            '=HYPERLINK("http://evil","x").jpg',
            "ab",
            None,
            [Finding("@p", "-s", "repost", 0.9, 1e-12, 0.0, None, 40, 1)],
            {"chat": {"name": "+chat"}, "from": "=cmd|' /C calc'!A0"},
        )
    ]
    write_csv(tmp_path / "h.csv", results)
    with open(tmp_path / "h.csv", encoding="utf-8-sig", newline="") as file:
        (row,) = list(csv.DictReader(file))
    assert row["path"].startswith("'=") and row["photo"] == "'@p" and row["subject"] == "'-s"
    assert row["chat"] == "'+chat" and row["from"].startswith("'=")
    assert row["score"] == "0.9"


def test_pairs_csv_has_a_row_per_pair_with_its_cluster(tmp_path):
    doc = PairsDocument(
        tool="counterfake test",
        images=3,
        errors=[],
        pairs=[
            Pair("a.jpg", "b.jpg", "manipulated", 0.9, 1e-9, 0.3, None, 40, "crop", 1),
            Pair("a.jpg", "-c.jpg", "repost", 0.8, 1e-9, 0.0, None, 40, "resolution", 1),
        ],
        clusters=[Cluster(1, "a.jpg", ["a.jpg", "b.jpg", "-c.jpg"], affected=True, scene=1)],
        photos_affected=1,
        scenes=1,
        files=[],
    )
    write_pairs_csv(tmp_path / "p.csv", doc)
    with open(tmp_path / "p.csv", encoding="utf-8-sig", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [(r["derivative"], r["kind"], r["cluster"]) for r in rows] == [
        ("b.jpg", "manipulated", "1"),
        ("'-c.jpg", "repost", "1"),
    ]


def test_a_name_that_is_not_utf8_is_written_as_its_escape(tmp_path):
    write_csv(tmp_path / "s.csv", [FileResult("bad-\udcff.jpg", error="bad: empty file")])
    text = (tmp_path / "s.csv").read_text(encoding="utf-8-sig")
    assert "bad-\\udcff.jpg" in text
