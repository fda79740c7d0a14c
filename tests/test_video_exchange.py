"""vPDQ exchange in ThreatExchange's CSV: export, import elsewhere, look a video up."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from video_support import held, textured, write_video

from counterfake.cli import main
from counterfake.exchange import ExchangeFormatError
from counterfake.video.exchange import read_vpdq_records


@pytest.fixture()
def clip(tmp_path: Path) -> Path:
    return write_video(tmp_path / "clip.mp4", held([textured(s) for s in range(3)], 1.0))


def test_export_import_and_lookup(tmp_path: Path, clip: Path, capsys) -> None:
    ours, theirs = str(tmp_path / "ours.db"), str(tmp_path / "theirs.db")
    assert main(["register", str(clip), "--subject", "alice", "--db", ours]) == 0
    shared = tmp_path / "shared.csv"
    assert main(["exchange", "export-vpdq", "-o", str(shared), "--db", ours]) == 0
    (row,) = list(csv.reader(shared.open()))[1:]
    assert row[0] == "vpdq" and row[2].startswith("v_") and "alice" not in shared.read_text()
    assert len(json.loads(row[1])) == 3  # one frame a second
    assert main(["exchange", "import-vpdq", str(shared), "--source", "te", "--db", theirs]) == 0
    assert main(["exchange", "import-vpdq", str(shared), "--source", "te", "--db", theirs]) == 0
    assert "imported 0 vPDQ signal(s)" in capsys.readouterr().out
    copy = write_video(tmp_path / "copy.webm", held([textured(s) for s in range(3)], 1.0),
                       codec="libvpx", options={})  # fmt: skip
    assert main(["exchange", "lookup-vpdq", str(copy), "--db", theirs]) == 0
    assert f"te: {row[2]}\t100% of the video's frames" in capsys.readouterr().out
    other = write_video(tmp_path / "other.mp4", held([textured(9)], 3.0))
    assert main(["exchange", "lookup-vpdq", str(other), "--db", ours]) == 0
    assert "no registered or imported video matches" in capsys.readouterr().out


def test_other_signal_types_pass_and_bad_rows_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_text(
        "signal_type,signal_str,collab,category,tags\n"
        f"pdq,{'0' * 64},c,,\n"
        'vpdq,"[""' + "f" * 64 + ',100,0.0""]",c,,\n'
    )
    (record,) = read_vpdq_records(path)
    assert record.ref == "c" and record.features[0].quality == 100
    path.write_text('signal_type,signal_str,collab,category,tags\nvpdq,"[""xyz,1,0""]",c,,\n')
    with pytest.raises(ExchangeFormatError, match=r"mixed\.csv: line 2: vPDQ entry 1"):
        list(read_vpdq_records(path))


def test_a_scan_finds_a_video_by_an_imported_vpdq_signal(tmp_path: Path, clip: Path) -> None:
    """Meta's decision inside a scan: the finding names the imported record, rests on vPDQ
    alone (no nfa), and an unrelated video finds nothing."""
    ours, theirs = str(tmp_path / "ours.db"), str(tmp_path / "theirs.db")
    assert main(["register", str(clip), "--subject", "alice", "--db", ours]) == 0
    shared = tmp_path / "shared.csv"
    assert main(["exchange", "export-vpdq", "-o", str(shared), "--db", ours]) == 0
    ref = list(csv.reader(shared.open()))[1][2]
    assert main(["exchange", "import-vpdq", str(shared), "--source", "te", "--db", theirs]) == 0
    folder = tmp_path / "downloaded"
    folder.mkdir()
    write_video(folder / "copy.webm", held([textured(s) for s in range(3)], 1.0),
                codec="libvpx", options={})  # fmt: skip
    write_video(folder / "other.mp4", held([textured(9)], 3.0))
    out = tmp_path / "out.json"
    assert main(["scan", str(folder), "--db", theirs, "--json", str(out), "--csv",
                 str(tmp_path / "r.csv"), "--report", str(tmp_path / "r.html"),
                 "--evidence", str(tmp_path / "ev")]) == 0  # fmt: skip
    assert main(["verify-evidence", str(tmp_path / "ev")]) == 0
    results = {Path(r["path"]).name: r for r in json.loads(out.read_text())["results"]}
    assert results["other.mp4"]["matches"] == []
    (match,) = results["copy.webm"]["matches"]
    assert (match["photo"], match["subject"]) == (f"te: {ref}", "imported from te")
    assert (match["kind"], match["media"], match["signal"]) == ("repost", "video", "vpdq")
    assert "nfa" not in match and match["score"] == 1.0
    assert match["segments"] == [{"scan": [0.0, 3.0]}]
    assert "by its vPDQ hash alone" in (tmp_path / "r.html").read_text()


def test_the_bank_decides_as_meta_does_at_the_threshold() -> None:
    """VpdqBank (vectorised) against vpdq.match_percent: distances of 31 and 32 bits, low
    quality frames, repeated hashes, and the times of the frames found."""
    import numpy as np

    from counterfake.signature.pdq import PdqHash
    from counterfake.video.exchange import VpdqBank
    from counterfake.video.vpdq import VpdqFeature, features_to_json, match_percent

    rng = np.random.default_rng(5)

    def flipped(bits: bytes, count: int) -> bytes:
        values = np.unpackbits(np.frombuffer(bits, np.uint8))
        values[rng.choice(256, count, replace=False)] ^= 1
        return np.packbits(values).tobytes()

    base = [rng.integers(0, 256, 32, dtype=np.uint8).tobytes() for _ in range(10)]
    shared = [VpdqFeature(PdqHash(b, 100), n, float(n)) for n, b in enumerate(base)]
    query = [  # 7 of 10 within 31 bits: 70%, not a match; then 8 of 10 (with a repeat): 80%
        VpdqFeature(PdqHash(flipped(b, 31 if n < 7 else 32), 90), n, float(n))
        for n, b in enumerate(base)
    ]
    query.append(VpdqFeature(PdqHash(flipped(base[9], 40), 10), 10, 10.0))  # low quality
    bank = VpdqBank([(1, "te", features_to_json(shared), "r1")])
    assert match_percent(query, shared) == 70.0 and bank.lookup(query, None) == []
    query[7] = VpdqFeature(PdqHash(flipped(base[7], 20), 90), 7, 7.0)
    query.append(VpdqFeature(query[7].hash, 11, 11.0))  # the same hash again, later
    (hit,) = bank.lookup(query, 11.5)
    assert match_percent(query, shared) == 80.0 == hit.score * 100
    assert hit.scan == (0.0, 11.5) and hit.record.name == "te: r1"
