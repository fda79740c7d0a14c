"""Photos inside videos in ``counterfake pairs`` (video/pairs.py): a slideshow of two photos
of the collection is paired with each (``contains_photo``, the photo the source) and joins a
cluster of each, without merging the two; a video showing no photo of the collection stays in
no cluster; an unreadable video is a one-line error naming it."""

from __future__ import annotations

from pathlib import Path

from conftest import save
from video_support import held, textured, write_video

from counterfake.pairs import PairFinder


def test_a_slideshow_of_two_photos_joins_both_clusters(tmp_path: Path) -> None:
    first, second = textured(70, 400, 300), textured(71, 400, 300)
    folder = tmp_path / "collection"
    save(folder / "first.jpg", first)
    save(folder / "second.jpg", second)
    write_video(folder / "slideshow.mp4", held([textured(72, 400, 300), first, second], 2.0))
    write_video(folder / "unrelated.mp4", held([textured(73, 400, 300)], 3.0))
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(64))
    doc = PairFinder().find([folder])
    pairs = {(Path(p.source).name, Path(p.derivative).name): p for p in doc.pairs}
    assert set(pairs) == {("first.jpg", "slideshow.mp4"), ("second.jpg", "slideshow.mp4")}
    first_pair = pairs["first.jpg", "slideshow.mp4"]
    assert (first_pair.kind, first_pair.media) == ("contains_photo", "photo")
    assert first_pair.segments is not None and first_pair.segments[0].registered is None
    start, end = first_pair.segments[0].scan
    assert 1.5 <= start <= 2.5 and 3.5 <= end <= 4.5
    members = sorted(sorted(Path(m).name for m in c.members) for c in doc.clusters)
    assert members == [["first.jpg", "slideshow.mp4"], ["second.jpg", "slideshow.mp4"]]
    assert {Path(c.original).name for c in doc.clusters} == {"first.jpg", "second.jpg"}
    assert doc.photos_affected == 2
    (error,) = doc.errors
    assert error["path"].endswith("broken.mp4") and error["error"].startswith(error["path"])
    assert "\n" not in error["error"]
