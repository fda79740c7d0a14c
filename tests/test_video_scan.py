"""Scanning videos: registered videos found through re-encoding, mirroring, speed changes,
trims and compilations, with their segments; registered photos found inside clips."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import blur_region
from video_support import textured, write_video

from counterfake.registry import Registry
from counterfake.results import Finding, Pair
from counterfake.scan import Scanner
from counterfake.signature.extract import make_signature
from counterfake.video.signature import make_video_signature
from counterfake.video.timeline import Hit, chains, range_iou, segment

FPS = 10
SIZE = (480, 360)


def framed(picture: np.ndarray) -> np.ndarray:
    """A picture letterboxed into a SIZE frame."""
    width, height = SIZE
    scale = min(width / picture.shape[1], height / picture.shape[0])
    small = cv2.resize(picture, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    frame = np.zeros((height, width, 3), np.uint8)
    y, x = (height - small.shape[0]) // 2, (width - small.shape[1]) // 2
    frame[y : y + small.shape[0], x : x + small.shape[1]] = small
    return frame


def panned(picture: np.ndarray, seconds: float) -> list[np.ndarray]:
    """A picture held with a slow zoom (a slideshow's pan and zoom)."""
    frame = framed(picture)
    count = round(seconds * FPS)
    centre = (SIZE[0] / 2, SIZE[1] / 2)
    return [
        cv2.warpAffine(frame, cv2.getRotationMatrix2D(centre, 0, 1 + 0.08 * k / count), SIZE)
        for k in range(count)
    ]


def slideshow(pictures: list[np.ndarray], seconds: float = 2.0) -> list[np.ndarray]:
    return [frame for picture in pictures for frame in panned(picture, seconds)]


@pytest.fixture(scope="module")
def original(photo) -> list[np.ndarray]:
    """The registered clip: 8 s, four pictures of 2 s (the example photo the second)."""
    return slideshow([textured(1, 480, 360), photo, textured(2, 400, 400), textured(3, 480, 360)])


@pytest.fixture(scope="module")
def registry(tmp_path_factory, original, unrelated) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("registry")
    clip = write_video(folder / "original.mp4", original, fps=FPS)
    db = folder / "r.db"
    still = textured(40, 400, 500)
    with Registry(db) as registry:
        registry.register_video("alice", make_video_signature(clip, "original.mp4"))
        registry.register("bob", [make_signature(still, "bob.jpg", "cd" * 32)])
    return db, folder


@pytest.fixture(scope="module")
def scanner(registry) -> Scanner:
    return Scanner(registry[0])


def scan(
    scanner: Scanner, tmp_path: Path, frames: list[np.ndarray], **options
) -> Sequence[Finding | Pair]:
    path = write_video(tmp_path / "scanned.mp4", frames, fps=FPS, **options)
    (tmp_path / "masks").mkdir(exist_ok=True)
    result = scanner.scan_file(str(path), tmp_path / "masks")
    assert result.error is None, result.error
    return result.matches


def only(matches: Sequence[Finding | Pair]) -> dict:
    """The one finding, as its JSON (the fields a video match reports)."""
    assert len(matches) == 1, matches
    return matches[0].to_json()


def test_reencoded_rescaled_repost(scanner, tmp_path, original) -> None:
    small = [cv2.resize(f, (320, 240), interpolation=cv2.INTER_AREA) for f in original]
    match = only(scan(scanner, tmp_path, small, options={"preset": "ultrafast", "crf": "35"}))
    assert (match["kind"], match["photo"], match["subject"]) == ("repost", "original.mp4", "alice")
    (part,) = match["segments"]
    assert range_iou(part["scan"], (0.0, 8.0)) >= 0.9
    assert range_iou(part["registered"], (0.0, 8.0)) >= 0.9


def test_mirrored_cropped_captioned_repost(scanner, tmp_path, original) -> None:
    edited = []
    for frame in original:
        frame = np.ascontiguousarray(frame[30:-30, 40:-40, :][:, ::-1])
        cv2.putText(frame, "look at this", (20, 260), cv2.FONT_HERSHEY_SIMPLEX, 1, (255,) * 3, 2)
        edited.append(frame)
    match = only(scan(scanner, tmp_path, edited))
    assert match["kind"] == "repost"
    assert range_iou(match["segments"][0]["scan"], (0.0, 8.0)) >= 0.9


@pytest.mark.parametrize("speed", [0.8, 1.25])
def test_speed_change(scanner, tmp_path, original, speed) -> None:
    frames = [original[int(i * speed)] for i in range(int(len(original) / speed))]
    match = only(scan(scanner, tmp_path, frames))
    (part,) = match["segments"]
    duration = len(frames) / FPS
    assert range_iou(part["scan"], (0.0, duration)) >= 0.9
    assert range_iou(part["registered"], (0.0, 8.0)) >= 0.8


def test_trim_inside_a_compilation(scanner, tmp_path, original, unrelated) -> None:
    others = slideshow([textured(seed, 480, 360) for seed in (20, 21)], 2.0)
    frames = others[:20] + original[15:65] + others[20:]  # the clip's 1.5-6.5 s at 2.0-7.0 s
    match = only(scan(scanner, tmp_path, frames))
    (part,) = match["segments"]
    assert range_iou(part["scan"], (2.0, 7.0)) >= 0.9
    assert range_iou(part["registered"], (1.5, 6.5)) >= 0.8


def test_a_registered_photo_held_in_a_clip(scanner, tmp_path, registry) -> None:
    still = textured(40, 400, 500)
    others = [textured(seed, 480, 360) for seed in (30, 31, 32)]
    frames = slideshow(others[:2], 1.5) + panned(still, 2.0) + slideshow(others[2:], 1.5)
    match = only(scan(scanner, tmp_path, frames))
    assert (match["kind"], match["subject"], match["media"]) == ("contains_photo", "bob", "photo")
    (part,) = match["segments"]
    assert range_iou(part["scan"], (3.0, 5.0)) >= 0.8 and 3.0 <= match["frame_time"] <= 5.0
    assert "registered" not in part


def test_a_photo_scrolling_under_a_bar_is_followed_to_the_end(scanner, tmp_path) -> None:
    """A screen recording: the photo moves up under the app's header until a third of it is
    hidden. Its segment runs to the end of the clip, however little of it the last frames
    prove on their own (looking.py: a track's continuation)."""
    from counterfake.video import looking

    still = cv2.resize(textured(40, 400, 500), (200, 250), interpolation=cv2.INTER_AREA)
    frames = []
    for n in range(60):
        canvas = np.full((SIZE[1], SIZE[0], 3), 235, np.uint8)
        top = 60 - round(2.4 * n)  # 24 pixels a second, from just under the header
        canvas[max(0, top) : top + 250, 140:340] = still[max(0, -top) :]
        canvas[:40] = (30, 110, 200)  # the header, over whatever scrolls under it
        frames.append(canvas)
    continued = []
    original = looking.FrameLooker._continues

    def spy(self, *args):
        found = original(self, *args)
        continued.append(found is not None)
        return found

    looking.FrameLooker._continues = spy
    try:
        match = only(scan(scanner, tmp_path, frames))
    finally:
        looking.FrameLooker._continues = original
    assert match["kind"] == "contains_photo"
    (part,) = match["segments"]
    assert part["scan"][0] == 0.0 and part["scan"][1] >= 5.8, continued


def test_a_followed_clip_verifies_about_one_frame_a_sample(scanner, tmp_path, original) -> None:
    """Each sample of a repost verifies the registered frame in step, not every neighbour."""
    from counterfake.video import looking

    calls = []
    verify = looking.verify_and_decide

    def counted(*args, **kwargs):
        calls.append(args[0])
        return verify(*args, **kwargs)

    looking.verify_and_decide = counted
    try:
        match = only(scan(scanner, tmp_path, original))
    finally:
        looking.verify_and_decide = verify
    assert match["kind"] == "repost"
    samples = 8 + 3 + 1  # a second each, the three cuts, the last frame (continuations only)
    assert len(calls) <= samples + looking.STARTING + 3, calls


def test_a_manipulated_photo_inside_a_clip_has_a_mask(scanner, tmp_path) -> None:
    still = textured(40, 400, 500)
    region = np.zeros(still.shape[:2], bool)
    region[150:400, 100:300] = True
    frames = slideshow([textured(33, 480, 360)], 1.0) + panned(blur_region(still, region), 2.0)
    match = only(scan(scanner, tmp_path, frames))
    assert match["kind"] == "contains_photo" and match["altered_fraction"] > 0.1
    mask = cv2.imread(match["mask"], cv2.IMREAD_GRAYSCALE)
    assert mask.shape == (SIZE[1], SIZE[0]) and (mask > 0).mean() > 0.05


def test_unrelated_clip_matches_nothing(scanner, tmp_path, unrelated) -> None:
    pictures = [unrelated, *(textured(seed, 480, 360) for seed in range(50, 53))]
    assert scan(scanner, tmp_path, slideshow(pictures)) == []


def test_a_broken_video_is_a_one_line_result(scanner, tmp_path) -> None:
    path = tmp_path / "broken.mkv"
    path.write_bytes(b"\x1a\x45\xdf\xa3" + bytes(200))
    result = scanner.scan_file(str(path))
    assert result.error is not None and result.error.startswith(f"{path}: ")
    assert result.matches == []


def hit(sample: int, scan_time: float, registered_time: float) -> Hit:
    return Hit(sample, scan_time, registered_time, 0.9, False, 0.0, -20.0, 50)


def test_chains_split_a_clip_shown_twice_and_drop_strays() -> None:
    hits = [hit(i, float(i), float(i)) for i in range(5)]
    hits += [hit(10 + i, 10.0 + i, float(i)) for i in range(4)]
    hits.append(hit(7, 7.0, 30.0))  # a stray: nowhere near either run in registered time
    found = chains(hits, max_gap=3.5)
    assert [len(c) for c in found] == [5, 4, 1]
    times = [float(i) for i in range(15)]
    cuts: list[float | None] = [10.0 if i == 10 else None for i in range(15)]
    second = segment(found[1], times, cuts, 15.0, 8.0)
    assert second.scan == (10.0, 13.5) and second.registered == pytest.approx((0.0, 3.5))
    cuts[10] = 9.7  # a cut the sampler passed over (too soon after a sample), noted on the next
    assert segment(found[1], times, cuts, 15.0, 8.0).scan == (9.7, 13.5)


def test_a_telegram_round_video_is_scanned_with_its_message(scanner, tmp_path, original) -> None:
    from telegram_export import chat, document, write_single_chat

    root = tmp_path / "ChatExport_2024-02-01"
    (root / "round_video_messages").mkdir(parents=True)
    square = [np.ascontiguousarray(f[:, 60:420]) for f in original[20:60]]  # a round, cropped
    write_video(root / "round_video_messages" / "r.mp4", square, fps=FPS)
    message = document(9, "round_video_messages/r.mp4", "video/mp4", "video_message")
    write_single_chat(root, chat("Leaks", "public_channel", 77, [message]))
    (result,) = list(scanner.scan([root]))
    assert result.error is None and result.context["media"] == "video_message"
    assert result.context["message_id"] == 9
    match = only(result.matches)
    assert match["kind"] == "repost"
    assert range_iou(match["segments"][0]["registered"], (2.0, 6.0)) >= 0.8


def test_cli_scan_of_a_folder_with_videos_writes_every_report(tmp_path, registry, original):
    import csv
    import json

    from conftest import run_cli

    db, _ = registry
    folder = tmp_path / "downloaded"
    folder.mkdir()
    write_video(folder / "repost.webm", original, fps=FPS, codec="libvpx", options={})
    (folder / "broken.mov").write_bytes(b"\x00\x00\x00\x14ftypqt  " + bytes(64))
    scan = run_cli(
        "scan", str(folder), "--db", str(db), "--json", "out.json", "--report", "r.html",
        "--csv", "r.csv", "--evidence", "ev", cwd=tmp_path,
    )  # fmt: skip
    assert scan.returncode == 0, scan.stderr
    document = json.loads((tmp_path / "out.json").read_text())
    by_name = {Path(r["path"]).name: r for r in document["results"]}
    assert by_name["broken.mov"]["error"].startswith(str(folder / "broken.mov"))
    (match,) = by_name["repost.webm"]["matches"]
    assert match["kind"] == "repost" and match["media"] == "video"
    html = (tmp_path / "r.html").read_text()
    assert html.count('<div class="strip">') == 1 and "registered video 0.0" in html
    assert html.count("data:image/jpeg;base64,") >= 3  # the strip of matched frames
    rows = list(csv.DictReader((tmp_path / "r.csv").open(encoding="utf-8-sig")))
    (row,) = [r for r in rows if r["kind"]]
    assert row["segments"].startswith("0.00-8.00>0.00-")
    verified = run_cli("verify-evidence", "ev", cwd=tmp_path)
    assert verified.returncode == 0, verified.stderr
    assert "video frames verified" in verified.stdout  # the strip of matched frames
    (frame,) = list((tmp_path / "ev" / "frames").iterdir())[:1]
    frame.write_bytes(frame.read_bytes()[:-10])
    tampered = run_cli("verify-evidence", "ev", cwd=tmp_path)
    assert tampered.returncode != 0 and "was modified" in tampered.stderr


def test_pairs_groups_a_photo_with_the_video_showing_it_and_its_trim_and_repost(
    tmp_path, original, photo
):
    import json

    from conftest import run_cli, save

    folder = tmp_path / "collection"
    folder.mkdir()
    write_video(folder / "original.mp4", original, fps=FPS)
    write_video(folder / "trim.mkv", original[20:70], fps=FPS)
    write_video(folder / "small.webm", [f[::2, ::2] for f in original], fps=FPS, codec="libvpx",
                options={"crf": "40", "b": "0"})  # fmt: skip
    write_video(folder / "other.mp4", slideshow([textured(60, 480, 360), textured(61)]), fps=FPS)
    save(folder / "still.jpg", photo)
    save(folder / "still-small.jpg", cv2.resize(photo, (240, 320), interpolation=cv2.INTER_AREA))
    pairs = run_cli(
        "pairs",
        str(folder),
        "--json",
        "out.json",
        "--report",
        "r.html",
        "--csv",
        "r.csv",
        cwd=tmp_path,
    )
    assert pairs.returncode == 0, pairs.stderr
    doc = json.loads((tmp_path / "out.json").read_text())
    names = {(Path(p["source"]).name, Path(p["derivative"]).name) for p in doc["pairs"]}
    assert ("original.mp4", "trim.mkv") in names
    assert {"original.mp4", "small.webm"} <= {n for pair in names for n in pair}
    # The photo shown in the clip (2-4 s) is its source: the videos join the photo's cluster
    # (the photo and its resized copy), one cluster.
    (cluster,) = [c for c in doc["clusters"] if any("trim" in m for m in c["members"])]
    assert Path(cluster["original"]).name == "still.jpg"
    assert sorted(Path(m).name for m in cluster["members"]) == [
        "original.mp4",
        "small.webm",
        "still-small.jpg",
        "still.jpg",
        "trim.mkv",
    ]
    assert len(doc["clusters"]) == 1
    shown = next(
        p
        for p in doc["pairs"]
        if p["derivative"].endswith("original.mp4") and p["source"].endswith("still.jpg")
    )
    assert shown["kind"] == "contains_photo"
    assert shown["media"] == "photo" and shown["direction"] == "shown in video"
    assert range_iou(shown["segments"][0]["scan"], (2.0, 4.0)) >= 0.8
    assert not any("other.mp4" in m for c in doc["clusters"] for m in c["members"])
    trim = next(
        p for p in doc["pairs"] if p["derivative"].endswith("trim.mkv") and p["media"] == "video"
    )
    assert range_iou(trim["segments"][0]["registered"], (2.0, 7.0)) >= 0.8
    assert doc["videos"] == 4 and doc["errors"] == []
