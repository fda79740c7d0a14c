"""Video benchmark: registered videos and photos found in videos built from the shared photos.

    python -m bench.video [--quick] [--name video]

Cases (bench/video_media.py; every choice from a fixed seed):

- registered videos: slideshows of five people photos (2 s each, pan and zoom, cross-fades),
  1280x720 at 25 fps, each reposted through every transform in TRANSFORMS: re-encoded small and
  at low quality, rescaled, cropped, letterboxed into a vertical frame, captioned, with a logo,
  mirrored, played at 0.8x and 1.25x, as VP9, trimmed, and trimmed into a compilation between
  clips of distractor photos;
- registered photos: held 2 s in a slideshow of distractors, and shown in a scrolling phone
  screen recording;
- negatives: the same kinds of clips made of unregistered people photos and distractors.

Each case is scanned by counterfake (Scanner.scan_file, one process, one thread), by vPDQ alone
(Meta's decision: 80% of the scanned video's frames within 31 bits of the registered video's;
for a registered photo, any frame within 31 bits of the photo's PDQ) and by MD5 alone. A case
is found when a match names its registered video (repost or manipulated) or photo
(contains_photo); any other match is a false match. Segment IoU compares the matched segment
with where the registered content really is in the scanned video.

Speed is CPU seconds of this process per second of video (x real time per core) on the 720p
cases, scanning and decoding only (the sampled frames converted to RGB, nothing matched).
Memory: peak resident memory of a fresh process scanning a short and a long video.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bench.results import save
from bench.video_media import (
    Clip,
    captioned,
    concat,
    cropped,
    encode,
    held_in,
    letterboxed_vertical,
    logo,
    mirrored,
    rescaled,
    screen_recording,
    slideshow,
    sped,
    trimmed,
)
from counterfake.registry import Registry
from counterfake.results import Finding
from counterfake.scan import Scanner
from counterfake.signature.extract import QUERY_MAX_SIDE, make_signature
from counterfake.signature.pdq import hamming_distance, pdq_hash
from counterfake.video.decode import Video
from counterfake.video.sampling import sample_frames
from counterfake.video.signature import file_digests, make_video_signature
from counterfake.video.timeline import range_iou
from counterfake.video.vpdq import DISTANCE_THRESHOLD, QUALITY_THRESHOLD, is_match, vpdq_hash

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
OUT = Path(__file__).resolve().parent / "out" / "video"
SEED = 20261207
SLIDE = 2.0  # seconds per photo in a registered slideshow
TRANSFORMS = (
    "reencode_small",
    "rescale_480p",
    "crop_10",
    "letterbox_vertical",
    "caption",
    "logo",
    "mirror",
    "speed_0.8",
    "speed_1.25",
    "vp9",
    "trim",
    "compilation",
)
GROUPS = {  # the targets are stated per group
    "repost": TRANSFORMS[:10],
    "trim_compilation": ("trim", "compilation"),
    "photo_held": ("photo_held_2s", "photo_screen_recording"),
}


@dataclass
class Case:
    name: str
    kind: str  # a transform, "photo_held_2s", "photo_screen_recording" or "negative_..."
    path: Path
    target: str | None  # the label of the registered video or photo it shows, if any
    scan_range: tuple[float, float] | None
    registered_range: tuple[float, float] | None
    duration: float
    size: tuple[int, int]


def read(path: Path) -> np.ndarray:
    return cv2.imread(str(path))[:, :, ::-1].copy()


def build(quick: bool) -> tuple[list[Case], dict[str, Path], dict[str, np.ndarray]]:
    """Every case's video under bench/out/video (bench/out/video/quick for ``quick``: the two
    modes draw different photos under the same names), reused when already there; the
    registered videos' files and the registered photos' pixels."""
    out = OUT / "quick" if quick else OUT
    rng = np.random.default_rng(SEED)
    videos, photos_held, negatives_people = (3, 5, 3) if quick else (6, 10, 6)
    people = [DATA / "people" / f"{n:04d}.jpg" for n in rng.permutation(250)[:120] + 1]
    distractors = [DATA / "distractors" / f"{n:04d}.jpg" for n in rng.permutation(600) + 1]
    pick = iter(people)
    filler = iter(distractors)

    def fillers(count: int, seconds: float, seed: int) -> Clip:
        return slideshow([read(next(filler)) for _ in range(count)], seconds, seed)

    registered_videos: dict[str, Path] = {}
    cases: list[Case] = []
    for v in range(videos):
        label = f"registered-{v}.mp4"
        clip = slideshow([read(next(pick)) for _ in range(5)], SLIDE, SEED + v)
        registered_videos[label] = _made(clip, out / "registered" / label, crf=20)
        length = clip.duration
        for transform in TRANSFORMS:
            made, scan_range, reg_range = _transformed(clip, transform, rng, fillers, SEED + v)
            path = (
                OUT
                / "cases"
                / f"{label[:-4]}.{transform}.{'webm' if transform == 'vp9' else 'mp4'}"
            )
            crf = 38 if transform == "reencode_small" else 28
            _made(made, path, crf=crf, codec="libvpx-vp9" if transform == "vp9" else "libx264")
            scan_range = scan_range or (0.0, made.duration)
            reg_range = reg_range or (0.0, length)
            cases.append(
                Case(
                    path.stem,
                    transform,
                    path,
                    label,
                    scan_range,
                    reg_range,
                    made.duration,
                    (made.width, made.height),
                )
            )
    registered_photos: dict[str, np.ndarray] = {}
    for p in range(photos_held):
        path = next(pick)
        label = f"photo-{path.stem}.jpg"
        registered_photos[label] = read(path)
        before = fillers(2, 2.0, SEED + 100 + p)
        made = held_in(before, registered_photos[label], 2.0, fillers(2, 2.0, SEED + 200 + p))
        file = _made(made, out / "cases" / f"{label[:-4]}.held.mp4", crf=28)
        cases.append(
            Case(
                file.stem,
                "photo_held_2s",
                file,
                label,
                (4.0, 6.0),
                None,
                made.duration,
                (made.width, made.height),
            )
        )
        if p % 2 == 0:
            screen = screen_recording(registered_photos[label], 6.0, SEED + 300 + p)
            file = _made(screen, out / "cases" / f"{label[:-4]}.screen.mp4", crf=28)
            cases.append(
                Case(
                    file.stem,
                    "photo_screen_recording",
                    file,
                    label,
                    (0.0, 6.0),
                    None,
                    screen.duration,
                    (screen.width, screen.height),
                )
            )
    for n in range(negatives_people):  # unregistered people, in every kind of clip
        clips = {
            "negative_people_slideshow": slideshow(
                [read(next(pick)) for _ in range(5)], SLIDE, SEED + 400 + n
            ),
            "negative_distractor_slideshow": fillers(5, SLIDE, SEED + 500 + n),
            "negative_people_held": held_in(
                fillers(2, 2.0, SEED + 600 + n),
                read(next(pick)),
                2.0,
                fillers(2, 2.0, SEED + 700 + n),
            ),
            "negative_screen_recording": screen_recording(read(next(pick)), 6.0, SEED + 800 + n),
        }
        for kind, made in clips.items():
            file = _made(made, out / "cases" / f"{kind}-{n}.mp4", crf=28)
            cases.append(
                Case(
                    file.stem,
                    kind,
                    file,
                    None,
                    None,
                    None,
                    made.duration,
                    (made.width, made.height),
                )
            )
    return cases, registered_videos, registered_photos


def _made(clip: Clip, path: Path, *, crf: int, codec: str = "libx264") -> Path:
    return path if path.exists() else encode(clip, path, crf=crf, codec=codec)


def _transformed(clip: Clip, transform: str, rng, fillers, seed: int):
    """(clip, where the registered content is in it, which part of the registered video)."""
    if transform == "reencode_small":
        return rescaled(clip, 640, 360), None, None
    if transform == "rescale_480p":
        return rescaled(clip, 854, 480), None, None
    if transform == "crop_10":
        return cropped(clip, 0.1), None, None
    if transform == "letterbox_vertical":
        return letterboxed_vertical(clip), None, None
    if transform == "caption":
        return captioned(clip, "she did not want you to see this"), None, None
    if transform == "logo":
        return logo(clip), None, None
    if transform == "mirror":
        return mirrored(clip), None, None
    if transform.startswith("speed_"):
        speed = float(transform.removeprefix("speed_"))
        made = sped(clip, speed)
        return made, None, (0.0, made.frames * speed / clip.fps)
    if transform == "vp9":
        return clip, None, None
    start = float(rng.uniform(1.0, 4.0))
    length = float(rng.uniform(4.0, 6.0))
    part = trimmed(clip, start, start + length)
    registered = (round(start * clip.fps) / clip.fps, round((start + length) * clip.fps) / clip.fps)
    if transform == "trim":
        return part, None, registered
    before = fillers(2, float(rng.uniform(1.5, 2.5)), seed + 900)
    after = fillers(2, float(rng.uniform(1.5, 2.5)), seed + 950)
    made = concat(before, part, after)
    where = (before.duration, before.duration + part.duration)
    return made, where, registered


def register(db: Path, videos: dict[str, Path], photos: dict[str, np.ndarray]) -> dict[str, Any]:
    """Register every video and photo, one subject each; their vPDQ, PDQ and MD5 for the
    baselines."""
    db.unlink(missing_ok=True)
    held: dict[str, Any] = {}
    with Registry(db) as registry:
        for label, path in videos.items():
            signature = make_video_signature(path, label)
            registry.register_video(f"subject-{label}", signature)
            held[label] = {"vpdq": list(signature.vpdq), "md5": signature.md5}
        for label, rgb in photos.items():
            sha = hashlib.sha256(label.encode()).hexdigest()
            registry.register(f"subject-{label}", [make_signature(rgb, label, sha)])
            held[label] = {"pdq": pdq_hash(rgb)}
    return held


def baselines(case: Case, held: dict[str, Any]) -> tuple[set[str], set[str]]:
    """What vPDQ alone and MD5 alone match the case's video to."""
    query = vpdq_hash(case.path)
    md5 = file_digests(case.path)[1]
    by_vpdq, by_md5 = set(), set()
    for label, signals in held.items():
        if "vpdq" in signals:
            if is_match(query, signals["vpdq"]):
                by_vpdq.add(label)
            if md5 == signals["md5"]:
                by_md5.add(label)
        elif any(
            f.quality >= QUALITY_THRESHOLD
            and hamming_distance(f.hash.bits, signals["pdq"].bits) <= DISTANCE_THRESHOLD
            for f in query
        ):
            by_vpdq.add(label)
    return by_vpdq, by_md5


def decode_seconds(path: Path) -> float:
    """CPU seconds to decode a video as a scan does (sampled frames to RGB at the size they
    are matched at, nothing matched)."""
    start = time.process_time()
    with Video(path) as video:
        for _ in sample_frames(video, skip_unreferenced=True, max_side=QUERY_MAX_SIDE):
            pass
    return time.process_time() - start


def memory_check(db: Path) -> dict[str, Any]:
    """Peak resident memory of a fresh process scanning a 20 s and a 120 s 720p video (a
    slideshow of distractors repeated), in MB: flat if it does not grow with the length."""
    pictures = [read(DATA / "distractors" / f"{n:04d}.jpg") for n in range(1, 6)]
    clip = slideshow(pictures, SLIDE, SEED)
    peaks = {}
    for repeat in (2, 12):
        path = OUT / "memory" / f"repeat-{repeat}.mp4"
        if not path.exists():
            encode(concat(*[clip] * repeat), path, crf=28)
        code = (
            "import resource; from counterfake.scan import Scanner; "
            f"r = Scanner({str(db)!r}).scan_file({str(path)!r}); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
        )
        command = [sys.executable, "-c", code]
        run = subprocess.run(command, capture_output=True, text=True, check=True)
        peaks[f"{clip.duration * repeat:.0f}s"] = round(int(run.stdout.split()[-1]) / 1024, 1)
    return {"peak_rss_mb": peaks}


def run(quick: bool) -> dict[str, Any]:
    cv2.setNumThreads(1)
    cases, videos, photos = build(quick)
    db = OUT / "registry.db"
    held = register(db, videos, photos)
    scanner = Scanner(db)
    rows: dict[str, dict[str, Any]] = defaultdict(lambda: defaultdict(list))
    false = {"counterfake": 0, "vpdq": 0, "md5": 0}
    false_examples: list[str] = []
    speed = {"video_seconds": 0.0, "scan_cpu": 0.0, "decode_cpu": 0.0}
    for number, case in enumerate(cases, 1):
        start = time.process_time()
        result = scanner.scan_file(str(case.path))
        cpu = time.process_time() - start
        if result.error:
            raise SystemExit(f"a benchmark case could not be scanned: {result.error}")
        by_vpdq, by_md5 = baselines(case, held)
        found, iou = False, None
        for match in result.matches:
            assert isinstance(match, Finding) and match.segments is not None  # a video's finding
            right = match.photo == case.target and (
                match.kind == "contains_photo"
                if case.target in photos
                else match.kind in ("repost", "manipulated")
            )
            if right:
                found = True
                iou = max(range_iou(s.scan, case.scan_range) for s in match.segments)
            else:
                false["counterfake"] += 1
                false_examples.append(f"{case.name} -> {match.photo} ({match.kind})")
        false["vpdq"] += len(by_vpdq - {case.target})
        false["md5"] += len(by_md5 - {case.target})
        row = rows[case.kind]
        row["found"].append(found)
        row["vpdq"].append(case.target in by_vpdq)
        row["md5"].append(case.target in by_md5)
        if iou is not None:
            row["iou"].append(iou)
        if case.size == (1280, 720):
            speed["video_seconds"] += case.duration
            speed["scan_cpu"] += cpu
            speed["decode_cpu"] += decode_seconds(case.path)
        print(
            f"[{number}/{len(cases)}] {case.name}: found={found} iou={iou} "
            f"vpdq={case.target in by_vpdq} cpu={cpu:.2f}s/{case.duration:.1f}s",
            flush=True,
        )
    return {
        "rows": {kind: _summary(row, kind.startswith("negative")) for kind, row in rows.items()},
        "groups": {
            group: _pooled([rows[k] for k in kinds if k in rows]) for group, kinds in GROUPS.items()
        },
        "negatives": sum(len(r["found"]) for k, r in rows.items() if k.startswith("negative")),
        "false_matches": false,
        "false_examples": false_examples[:20],
        "speed_720p": {
            "video_seconds": round(speed["video_seconds"], 1),
            "scan_x_realtime_per_core": round(speed["video_seconds"] / speed["scan_cpu"], 1),
            "decode_x_realtime_per_core": round(speed["video_seconds"] / speed["decode_cpu"], 1),
        },
        "memory": memory_check(db),
        "registered": {"videos": len(videos), "photos": len(photos)},
    }


def _summary(row: dict[str, list], negative: bool) -> dict[str, Any]:
    n = len(row["found"])
    summary: dict[str, Any] = {"cases": n}
    if not negative:
        summary |= {
            "found": sum(row["found"]) / n,
            "vpdq": sum(row["vpdq"]) / n,
            "md5": sum(row["md5"]) / n,
        }
    if row["iou"]:
        summary |= {"iou_mean": float(np.mean(row["iou"])), "iou_min": float(np.min(row["iou"]))}
    return summary


def _pooled(rows: list[dict[str, list]]) -> dict[str, Any]:
    merged: dict[str, list] = defaultdict(list)
    for row in rows:
        for key, values in row.items():
            merged[key] += values
    return _summary(merged, False) if merged["found"] else {"cases": 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="half the cases, not saved")
    parser.add_argument("--name", default="video", help="result file bench/results/NAME.json")
    args = parser.parse_args()
    figures = run(args.quick)
    print(json.dumps({k: v for k, v in figures.items() if k != "false_examples"}, indent=1))
    if not args.quick:
        print(f"saved {save(args.name, figures)}")


if __name__ == "__main__":
    main()
