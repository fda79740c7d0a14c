"""The video benchmark's clip builders: sizes, lengths and timings the scoring relies on."""

from __future__ import annotations

import numpy as np
import pytest
from video_support import textured

from bench.video_media import (
    FPS,
    HEIGHT,
    WIDTH,
    concat,
    cropped,
    encode,
    held_in,
    letterboxed_vertical,
    mirrored,
    screen_recording,
    slideshow,
    sped,
    trimmed,
)
from counterfake.video.decode import Video


@pytest.fixture(scope="module")
def clip():
    return slideshow([textured(1), textured(2)], 1.0, seed=3)


def test_slideshow_timing_and_fade(clip) -> None:
    assert (clip.frames, clip.duration) == (2 * FPS, 2.0)
    first, faded = clip.frame(0), clip.frame(FPS - 1)
    assert first.shape == (HEIGHT, WIDTH, 3)
    assert (
        np.abs(faded.astype(int) - clip.frame(FPS).astype(int)).mean()
        < np.abs(first.astype(int) - clip.frame(FPS).astype(int)).mean()
    )


def test_transforms_keep_their_promises(clip) -> None:
    assert sped(clip, 1.25).frames == 40 and sped(clip, 0.8).frames == 62
    assert trimmed(clip, 0.4, 1.4).frames == FPS
    assert cropped(clip, 0.1).frame(0).shape == (576, 1024, 3)
    assert letterboxed_vertical(clip).frame(0).shape == (1280, 720, 3)
    assert np.array_equal(mirrored(clip).frame(5), clip.frame(5)[:, ::-1])
    both = concat(clip, trimmed(clip, 0, 0.5))
    assert both.frames == 62 and np.array_equal(both.frame(51), clip.frame(1))
    held = held_in(clip, textured(4), 2.0, clip)
    assert held.duration == 6.0 and np.array_equal(held.frame(60), held.frame(90))
    assert screen_recording(textured(5), 1.0, seed=1).frame(10).shape == (HEIGHT, WIDTH, 3)


def test_encoded_clip_decodes_at_its_length(tmp_path, clip) -> None:
    path = encode(trimmed(clip, 0, 1.0), tmp_path / "c.mp4")
    with Video(path) as video:
        assert video.info.duration == pytest.approx(1.0, abs=0.05)
        assert sum(1 for _ in video.frames()) == FPS
