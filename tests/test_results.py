"""The one result model: figures rounded once, and every result read back as it was written."""

from __future__ import annotations

import json
from dataclasses import dataclass

from counterfake.results import (
    Cluster,
    FileResult,
    Finding,
    Pair,
    PairsDocument,
    PictureFile,
    TimeRange,
)


@dataclass
class Measured:
    kind: str = "manipulated"
    score: float = 0.912345678
    nfa: float = 3.14159e-12
    altered_fraction: float = 0.2345678
    inliers: int = 57


def test_a_finding_rounds_its_figures_as_reported():
    finding = Finding.of(Measured(), photo="p.jpg", subject="alice", mask=None, instances=2)
    assert (finding.score, finding.nfa, finding.altered_fraction) == (0.9123, 3.14e-12, 0.2346)
    assert list(finding.to_json()) == [
        "photo",
        "subject",
        "kind",
        "score",
        "nfa",
        "altered_fraction",
        "mask",
        "inliers",
        "instances",
    ]


def test_a_file_result_reads_back_as_written_through_json():
    finding = Finding("p.jpg", "alice", "repost", 0.9, 1e-9, 0.0, "m.png", 40, 1)
    result = FileResult("a.jpg", "ab" * 32, None, [finding], {"chat": {"name": "c"}})
    again = FileResult.from_json(json.loads(json.dumps(result.to_json())))
    assert again == result


def test_a_pairs_file_result_keeps_its_pairs():
    pair = Pair("a.jpg", "b.jpg", "manipulated", 0.8, 1e-6, 0.3, None, 30, "crop", 1)
    result = FileResult("b.jpg", "cd" * 32, None, [pair])
    assert FileResult.from_json(json.loads(json.dumps(result.to_json()))) == result


def test_a_journal_line_from_before_nfa_was_recorded_reads_as_zero():
    line = {
        "path": "a.jpg",
        "sha256": None,
        "error": None,
        "context": None,
        "matches": [
            {
                "photo": "p",
                "subject": "s",
                "kind": "repost",
                "score": 0.9,
                "altered_fraction": 0.0,
                "mask": None,
                "inliers": 30,
                "instances": 1,
            }
        ],
    }
    [finding] = FileResult.from_json(line).matches
    assert isinstance(finding, Finding) and finding.nfa == 0.0


def test_the_pairs_document_gives_each_file_its_pairs_as_the_derivative():
    pair = Pair("a.jpg", "b.jpg", "repost", 0.8, 1e-6, 0.0, None, 30, "resolution", 1)
    doc = PairsDocument(
        tool="counterfake test",
        images=2,
        errors=[{"path": "c.jpg", "error": "c.jpg: empty file"}],
        pairs=[pair],
        clusters=[Cluster(1, "a.jpg", ["a.jpg", "b.jpg"], affected=True, scene=1)],
        photos_affected=1,
        scenes=1,
        files=[PictureFile(name, None, None) for name in ("a.jpg", "b.jpg", "c.jpg")],
    )
    results = {r.path: r for r in doc.file_results()}
    assert results["a.jpg"].matches == [] and results["b.jpg"].matches == [pair]
    assert results["c.jpg"].error == "c.jpg: empty file"
    assert "telegram" not in doc.to_json()
    doc.telegram = []
    assert doc.to_json()["telegram"] == []


def test_a_video_finding_reports_its_time_fields_as_the_video_scan_wrote_them():
    finding = Finding(
        "clip.mp4",
        "alice",
        "contains_photo",
        0.8,
        1e-12,
        0.1,
        None,
        30,
        2,
        media="photo",
        frame_time=3.25,
        segments=(TimeRange((3.0, 5.0)), TimeRange((7.0, 8.5))),
    )
    assert finding.to_json() == {
        "photo": "clip.mp4",
        "subject": "alice",
        "kind": "contains_photo",
        "score": 0.8,
        "nfa": 1e-12,
        "altered_fraction": 0.1,
        "mask": None,
        "inliers": 30,
        "instances": 2,
        "media": "photo",
        "frame_time": 3.25,
        "segments": [{"scan": [3.0, 5.0]}, {"scan": [7.0, 8.5]}],
    }
    result = FileResult("v.mp4", "ab" * 32, None, [finding])
    assert FileResult.from_json(json.loads(json.dumps(result.to_json()))) == result


def test_findings_in_a_video_are_built_once_for_every_face():
    """Finding.of_video (scan, service) and Finding.of_imported_video (an imported vPDQ
    signal), and both read back from their JSON."""

    @dataclass
    class Span:
        scan: tuple[float, float]
        registered: tuple[float, float]

    @dataclass
    class InVideo(Measured):
        is_photo: bool = False
        frame_time: float = 4.56789
        segments: tuple[Span, ...] = (Span((1.0, 6.0), (0.0, 5.0)),)

    @dataclass
    class Record:
        name: str = "te: 42"
        source: str = "te"

    @dataclass
    class Imported:
        record: Record
        score: float = 0.912345
        scan: tuple[float, float] = (0.0, 3.0)

    video = Finding.of_video(InVideo(), photo="clip.mp4", subject="alice", mask=None)
    assert (video.media, video.frame_time, video.instances) == ("video", 4.568, 1)
    assert video.segments == (TimeRange((1.0, 6.0), (0.0, 5.0)),)
    shown = Finding.of_video(InVideo(is_photo=True), photo="p.jpg", subject="bob", mask=None)
    assert shown.media == "photo" and shown.segments == (TimeRange((1.0, 6.0)),)
    imported = Finding.of_imported_video(Imported(Record()), signal="vpdq")
    written = imported.to_json()
    assert "nfa" not in written and written["signal"] == "vpdq" and written["score"] == 0.9123
    assert (written["photo"], written["subject"]) == ("te: 42", "imported from te")
    result = FileResult("v.mp4", "ab" * 32, None, [video, shown, imported])
    assert FileResult.from_json(json.loads(json.dumps(result.to_json()))) == result


def test_a_video_pair_reports_the_fields_video_pairs_wrote():
    pair = Pair(
        source="original.mp4",
        derivative="trim.mkv",
        kind="repost",
        score=0.95,
        nfa=None,
        altered_fraction=0.0,
        mask=None,
        inliers=None,
        direction="coverage",
        cluster=3,
        media="video",
        segments=(TimeRange((0.0, 5.0), (2.0, 7.0)),),
    )
    written = pair.to_json()
    assert list(written) == [
        "source",
        "derivative",
        "kind",
        "score",
        "altered_fraction",
        "mask",
        "media",
        "segments",
        "direction",
        "cluster",
    ]
    assert written["segments"] == [{"scan": [0.0, 5.0], "registered": [2.0, 7.0]}]
    assert Pair.from_json(json.loads(json.dumps(written))) == pair
