"""vPDQ: our implementation against Meta's ``vpdq`` package, and the exchange formats."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from video_support import held, textured, write_video

from counterfake.video.vpdq import (
    features_from_json,
    features_to_json,
    features_to_lines,
    is_match,
    match_percent,
    vpdq_hash,
)

PICTURES = [textured(seed, 352, 288) for seed in range(4)]
# CI installs Meta's package (.ci/run) and sets this, so that a missing package fails there
REQUIRED = os.environ.get("COUNTERFAKE_REQUIRE_VPDQ") == "1"


@pytest.mark.parametrize(
    ("name", "codec", "fps"),
    [("a.mp4", "libx264", 25), ("b.mkv", "libx264", 30000 / 1001), ("c.webm", "libvpx", 12)],
)
def test_hashes_equal_metas_package(tmp_path: Path, name: str, codec: str, fps: float) -> None:
    try:
        import vpdq
    except ImportError:
        if REQUIRED:
            pytest.fail("Meta's vpdq package is missing and COUNTERFAKE_REQUIRE_VPDQ=1")
        pytest.skip("Meta's vpdq package (extra 'vpdq') not installed")
    path = write_video(tmp_path / name, held(PICTURES, 1.3, fps=fps), fps=fps, codec=codec)
    ours = vpdq_hash(path)
    theirs = vpdq.computeHash(str(path))
    assert [(f.frame_number, f.quality, f.hash.hex()) for f in ours] == [
        (f.frame_number, f.quality, f.hex) for f in theirs
    ]
    assert [f.timestamp for f in ours] == pytest.approx([f.timestamp for f in theirs], abs=1e-6)


def test_one_hash_a_second_with_meta_numbering(tmp_path: Path) -> None:
    path = write_video(tmp_path / "a.mp4", held(PICTURES, 1.0, fps=10), fps=10)
    features = vpdq_hash(path)
    assert [f.frame_number for f in features] == [0, 10, 20, 30]
    assert [f.timestamp for f in features] == pytest.approx([0.0, 1.0, 2.0, 3.0])
    assert features_to_lines(features).splitlines()[1].startswith("10,")


def test_threatexchange_signal_round_trip(tmp_path: Path) -> None:
    path = write_video(tmp_path / "a.mp4", held(PICTURES, 1.0))
    features = vpdq_hash(path)
    back = features_from_json(features_to_json(features))
    assert [(f.hash, f.timestamp) for f in back] == [(f.hash, f.timestamp) for f in features]
    with pytest.raises(ValueError, match="vPDQ entry 1"):
        features_from_json('["nothex,100,0.0"]')


def test_reencoded_copy_matches_and_another_video_does_not(tmp_path: Path) -> None:
    original = vpdq_hash(write_video(tmp_path / "a.mp4", held(PICTURES, 1.0)))
    copy = vpdq_hash(
        write_video(tmp_path / "b.webm", held(PICTURES, 1.0), codec="libvpx", options={})
    )
    unrelated = [textured(seed, 352, 288) for seed in (10, 11)]
    other = vpdq_hash(write_video(tmp_path / "c.mp4", held(unrelated, 2.0)))
    assert is_match(copy, original) and match_percent(copy, original) == 100.0
    assert match_percent(other, original) == 0.0
