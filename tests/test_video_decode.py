"""Video decoding and sampling: containers, animations, bombs, truncated and corrupt streams."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from video_support import held, textured, write_video

from counterfake.imaging import ImageError
from counterfake.video.decode import Video, VideoError, VideoLimits, is_animation
from counterfake.video.sampling import Sampling, sample_frames, scene_distance

PICTURES = [textured(seed) for seed in range(3)]


@pytest.mark.parametrize(
    ("name", "codec"),
    [
        ("clip.mp4", "libx264"),
        ("clip.mov", "libx264"),
        ("clip.mkv", "libx264"),
        ("clip.webm", "libvpx-vp9"),
        ("clip.avi", "mpeg4"),
        ("clip.3gp", "mpeg4"),
    ],
)
def test_containers_decode_with_times(tmp_path: Path, name: str, codec: str) -> None:
    path = write_video(tmp_path / name, held(PICTURES, 1.0), codec=codec, options={})
    with Video(path) as video:
        assert (video.info.width, video.info.height) == (320, 240)
        frames = list(video.frames())
    assert len(frames) == 30
    times = [f.time for f in frames]
    assert times == sorted(times) and times[-1] == pytest.approx(2.9, abs=0.05)
    rgb = frames[15].rgb()
    assert rgb.shape == (240, 320, 3) and rgb.dtype == np.uint8
    assert np.abs(rgb.astype(int) - PICTURES[1]).mean() < 20  # the picture held at 1.5 s


@pytest.mark.parametrize("suffix", [".gif", ".webp"])
def test_animations_decode_with_their_durations(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"loop{suffix}"
    images = [Image.fromarray(p) for p in PICTURES]
    images[0].save(path, save_all=True, append_images=images[1:], duration=[500, 1000, 250])
    assert is_animation(path)
    with Video(path) as video:
        assert video.is_animation and video.info.duration == pytest.approx(1.75)
        frames = list(video.frames())
    assert [f.time for f in frames] == pytest.approx([0.0, 0.5, 1.5])
    assert np.abs(frames[1].rgb().astype(int) - PICTURES[1]).mean() < 25


def test_a_still_gif_is_not_an_animation(tmp_path: Path) -> None:
    path = tmp_path / "still.gif"
    Image.fromarray(PICTURES[0]).save(path)
    assert not is_animation(path)


def test_sampling_takes_cuts_and_a_steady_rate(tmp_path: Path) -> None:
    # Three pictures held 2.5 s each at 10 fps: cuts at 2.5 and 5.0 s.
    path = write_video(tmp_path / "cuts.mp4", held(PICTURES, 2.5))
    with Video(path) as video:
        samples = list(sample_frames(video, Sampling(rate=1.0)))
    times = [s.time for s in samples]
    assert times == pytest.approx([0.0, 1.0, 2.0, 2.5, 3.5, 4.5, 5.0, 6.0, 7.0, 7.4])
    assert [s.time for s in samples if s.scene_change] == pytest.approx([2.5, 5.0])
    assert [s.cut_at for s in samples] == pytest.approx(
        [None, None, None, 2.5, None, None, 5.0, None, None, None]
    )
    assert [s.final for s in samples] == [False] * 9 + [True]  # the last frame, looked at last


def test_a_cut_too_soon_after_a_sample_is_noted_on_the_next(tmp_path: Path) -> None:
    # Cuts at 2.5 and 5.0 s; min_gap 0.6 s keeps the sampler off the cut 0.5 s after 2.0 s.
    path = write_video(tmp_path / "cuts.mp4", held(PICTURES, 2.5))
    with Video(path) as video:
        samples = list(sample_frames(video, Sampling(rate=0.5, min_gap=0.6), max_side=40))
    by_time = {round(s.time, 2): s for s in samples}
    assert 2.5 not in by_time and by_time[4.0].cut_at == pytest.approx(2.5)
    assert max(samples[0].rgb.shape[:2]) == 40  # converted reduced, in one pass


def test_sampling_cap_spreads_over_the_whole_video(tmp_path: Path) -> None:
    path = write_video(tmp_path / "long.mp4", held(PICTURES, 4.0, fps=5), fps=5)
    with Video(path) as video:
        samples = list(sample_frames(video, Sampling(rate=1.0, max_samples=6)))
    assert len(samples) <= 6
    assert samples[-1].time >= 8.0  # the cap lowered the rate; it did not stop at the start


def test_scene_distance_sees_cuts_not_fades() -> None:
    picture, other = (textured(seed)[:, :, 0].astype(np.float32) for seed in (5, 6))
    # One frame's step of a one-second fade to black at 25 fps, and a cut.
    assert scene_distance(picture, picture * 0.96 + 3) < Sampling().scene_change / 3
    assert scene_distance(picture, other) > Sampling().scene_change


def test_bombs_are_refused_before_decoding(tmp_path: Path) -> None:
    path = write_video(tmp_path / "clip.mp4", held(PICTURES[:1], 3.0))
    with pytest.raises(VideoError, match=r"clip\.mp4: lasts 3 s, over the limit of 2 s"):
        Video(path, VideoLimits(max_duration=2.0))
    with pytest.raises(VideoError, match="320x240 are over the limit of 10000 pixels"):
        Video(path, VideoLimits(max_pixels=10_000))
    with pytest.raises(VideoError, match="declares 30 frames, over the limit of 20"):
        Video(path, VideoLimits(max_frames=20))


def test_a_large_animation_is_refused_before_its_frames_load(tmp_path: Path) -> None:
    path = tmp_path / "big.gif"
    frames = [Image.new("RGB", (400, 300), (i * 60, 0, 0)) for i in range(3)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    with pytest.raises(VideoError, match=r"400x300 are over the limit of 100000 pixels"):
        Video(path, VideoLimits(max_pixels=100_000))


def test_a_truncated_stream_names_where_it_ends(tmp_path: Path) -> None:
    path = write_video(tmp_path / "cut.mkv", held(PICTURES, 2.0))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError) as caught, Video(path) as video:
        list(video.frames())
    message = str(caught.value)
    assert message.startswith(f"{path}: stream ends at ") and "truncated" in message
    assert "\n" not in message


def test_a_truncated_mp4_is_one_line(tmp_path: Path) -> None:
    path = write_video(tmp_path / "cut.mp4", held(PICTURES, 2.0))
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(ImageError) as caught, Video(path) as video:
        list(video.frames())
    assert str(caught.value).startswith(f"{path}: ") and "\n" not in str(caught.value)


def test_corrupt_bytes_give_a_result_or_one_line(tmp_path: Path) -> None:
    path = write_video(tmp_path / "noise.mkv", held(PICTURES, 2.0))
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(1)
    middle = len(data) // 3
    data[middle : middle + 4000] = rng.integers(0, 256, 4000, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    try:
        with Video(path) as video:
            frames = [f.rgb() for f in video.frames()]
        assert frames  # FFmpeg concealed the damage: frames still come out
    except VideoError as error:
        assert str(error).startswith(f"{path}: ") and "\n" not in str(error)


@pytest.mark.parametrize("content", [b"", b"not a video at all" * 10])
def test_non_videos_are_one_line(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "fake.mp4"
    path.write_bytes(content)
    with pytest.raises(VideoError) as caught:
        Video(path)
    assert str(caught.value).startswith(f"{path}: ") and "\n" not in str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(VideoError, match="no such file"):
        Video(tmp_path / "gone.mp4")


def test_fast_motion_is_not_a_string_of_cuts(tmp_path: Path) -> None:
    picture = textured(7, 640, 240)
    panning = [np.ascontiguousarray(np.roll(picture, 24 * k, axis=1)[:, :320]) for k in range(40)]
    path = write_video(tmp_path / "pan.mp4", panning)
    with Video(path) as video:
        samples = list(sample_frames(video, Sampling(rate=1.0)))
    assert len(samples) <= 6  # four seconds: the steady rate, not a sample per frame
