"""Registering a video: its signature, the .cfsig file (old files still read), the registry."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from conftest import EXAMPLES, run_cli
from video_support import held, textured, write_video

from counterfake.registry import Registry
from counterfake.signature import cfsig
from counterfake.video.signature import FRAME_FEATURES, make_video_signature
from counterfake.video.vpdq import vpdq_hash


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """Three pictures held 2 s each at 10 fps: cuts at 2 s and 4 s."""
    folder = tmp_path_factory.mktemp("clip")
    return write_video(folder / "clip.mp4", held([textured(s, 400, 300) for s in range(3)], 2.0))


def test_signature_holds_sampled_frames_vpdq_and_md5(clip: Path) -> None:
    video = make_video_signature(clip, "clip.mp4")
    assert video.times == pytest.approx([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    assert len(video.frames) == len(video.times)
    assert video.frames[2].label == "clip.mp4@2.00s"
    assert all(len(f.features) <= FRAME_FEATURES for f in video.frames)
    assert video.md5 == hashlib.md5(clip.read_bytes()).hexdigest()
    assert video.sha256 == hashlib.sha256(clip.read_bytes()).hexdigest()
    assert video.duration == pytest.approx(6.0)
    assert [f.line() for f in video.vpdq] == [f.line() for f in vpdq_hash(clip)]


def test_cfsig_round_trip_with_photos_and_videos(tmp_path: Path, clip: Path, photo) -> None:
    from counterfake.signature.extract import make_signature

    still = make_signature(photo, "photo.jpg", "ab" * 32)
    video = make_video_signature(clip, "clip.mp4")
    path = tmp_path / "both.cfsig"
    cfsig.write(path, [still], [video])
    contents = cfsig.read_contents(path)
    assert [p.label for p in contents.photos] == ["photo.jpg"]
    (back,) = contents.videos
    assert (back.label, back.md5, back.times) == (video.label, video.md5, video.times)
    assert [f.sha256 for f in back.frames] == [f.sha256 for f in video.frames]
    assert [f.line() for f in back.vpdq] == [f.line() for f in video.vpdq]
    assert cfsig.read(path)[0].label == "photo.jpg"  # photos alone, as before videos
    # Every file is written as version 3, whose records readers before it cannot read.
    assert b'"version":3' in cfsig.dumps([still])


def test_registry_keeps_frames_as_photos_and_withdraws_them(clip: Path, registry_target) -> None:
    video = make_video_signature(clip, "clip.mp4")
    with Registry(registry_target) as registry:
        assert registry.register_video("alice", video)
        assert not registry.register_video("alice", video)  # the same file again
        (registered,) = registry.videos()
        assert (registered.label, registered.md5) == ("clip.mp4", video.md5)
        frames = registry.video_frames()
        assert sorted(f.time for f in frames.values()) == pytest.approx(list(video.times))
        assert len(list(registry.signatures())) == len(video.times)
        assert registry.video_vpdq(registered.video_id).count("\n") == len(video.vpdq)
        assert registry.withdraw("alice") == len(video.times)
        assert list(registry.videos()) == [] and registry.video_frames() == {}


def test_cli_register_and_hash_a_video(tmp_path: Path, clip: Path) -> None:
    db = str(tmp_path / "r.db")
    registered = run_cli("register", str(clip), "--subject", "alice", "--db", db, cwd=tmp_path)
    assert registered.returncode == 0, registered.stderr
    assert registered.stdout == "registered 1 video(s) for alice; 0 already registered\n"
    hashed = run_cli("hash", str(clip), str(EXAMPLES / "registered"), "-o", "s.cfsig", cwd=tmp_path)
    assert hashed.returncode == 0, hashed.stderr
    assert "wrote 1 signature(s) and 1 video(s)" in hashed.stdout
    again = run_cli(
        "register", "--signatures", "s.cfsig", "--subject", "bob", "--db", db, cwd=tmp_path
    )
    assert "registered 1 photo(s)" in again.stdout and "registered 1 video(s)" in again.stdout


def test_a_broken_video_is_skipped_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100)
    result = run_cli("hash", str(tmp_path / "broken.mp4"), "-o", "s.cfsig", cwd=tmp_path)
    assert result.returncode == 0
    assert f"skipped {tmp_path / 'broken.mp4'}: " in result.stderr
