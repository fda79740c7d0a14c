"""The pairs benchmark's collection (bench/pairs.py): which files a window of sources gives,
and the truth it is scored against."""

from __future__ import annotations

from pathlib import Path

from bench.pairs import collection


def _case(source: str, name: str, edit: str | None, transform: str, donor=None) -> dict:
    return {
        "path": f"images/{source}-{name}.jpg",
        "source": source,
        "source_path": f"/people/{source}.jpg",
        "edit": edit,
        "transform": transform,
        "donor": donor,
        "beside": None,
    }


MANIFEST = {
    "sources": [{"id": s, "path": f"/people/{s}.jpg"} for s in ("0001", "0002", "0003", "0004")],
    "cases": [
        case
        for s in ("0001", "0002", "0003", "0004")
        for case in (
            _case(s, "repost", None, "jpeg"),
            _case(s, "paste", "paste", "crop", donor="/distractors/0009.jpg"),
        )
    ],
    "distractors": [f"/distractors/{n:04d}.jpg" for n in range(1, 6)],
}


def test_a_window_of_sources_holds_those_sources_their_cases_and_the_first_distractors():
    files, truth = collection(MANIFEST, Path("cases"), limit=2, distractors=3, skip=1)
    sources = ["/people/0002.jpg", "/people/0003.jpg"]
    cases = [f"cases/images/{s}-{n}.jpg" for s in ("0002", "0003") for n in ("repost", "paste")]
    distractors = [f"/distractors/{n:04d}.jpg" for n in (1, 2, 3)]
    donor = "/distractors/0009.jpg"  # beyond the first three, present as a donor
    assert sorted(files) == sorted([*sources, *cases, *distractors, donor])
    assert truth["sources"] == sources and sorted(truth["affected"]) == sources
    assert truth["holds"]["cases/images/0003-paste.jpg"] == {"/people/0003.jpg", donor}
    assert truth["faithful"] == {*sources, "cases/images/0002-repost.jpg", cases[2]}


def test_the_window_after_the_last_source_is_empty_of_sources_and_the_default_is_the_first():
    files, truth = collection(MANIFEST, Path("cases"), limit=2, distractors=0, skip=4)
    assert files == [] and truth["sources"] == []
    _, first = collection(MANIFEST, Path("cases"), limit=2, distractors=0)
    assert first["sources"] == ["/people/0001.jpg", "/people/0002.jpg"]
