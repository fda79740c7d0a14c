"""A tamper-evident record of a scan: a hash-chained manifest, and the masks it refers to.

``DIR/manifest.jsonl`` holds one JSON object per line: a header (tool and library versions,
settings, thresholds, the registry and a digest of what it held, the start time), one line per
scanned file (path, SHA-256, size, error or findings) and a closing line (end time, counts).
Every line carries its position ``seq`` and ``prev``, the SHA-256 of the previous line's bytes,
so altering, inserting, removing or reordering any line breaks the chain from there on.
``DIR/manifest.sha256`` holds the hash and number of the last line, so cutting lines off the end
is caught too. Masks are copied to ``DIR/masks/<sha256>.png`` and their hashes are in the lines;
a video's findings add the strip of matched frames (thumbnails.strip_times) as
``DIR/frames/<sha256>.jpg``, checked the same way.

The chain proves the evidence is unchanged *since it was written*, but anyone able to rewrite
the whole folder can recompute every hash. Keep the one-line hash that ``scan --evidence`` prints
somewhere else (an e-mail, a ticket, a timestamping service) and check it with ``--expect``.

No host names, user names or absolute paths of the machine beyond what the user gave: the
manifest describes the scan, not the computer it ran on.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import json
import os
import platform
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy
import PIL

from counterfake import __version__
from counterfake.db import display_name
from counterfake.matching import Thresholds
from counterfake.registry import Registry
from counterfake.reports.thumbnails import make_video_strip, strip_times
from counterfake.results import FileResult, Finding

FORMAT = "counterfake-evidence/1"
MANIFEST = "manifest.jsonl"
ANCHOR = "manifest.sha256"
MASKS = "masks"
FRAMES = "frames"
GENESIS = "0" * 64  # the "previous hash" of the first line
_MASK_NAME = re.compile(r"masks/[0-9a-f]{64}\.png")
_FRAME_NAME = re.compile(r"frames/[0-9a-f]{64}\.jpg")
_ANCHOR_LINE = re.compile(rb"([0-9a-f]{64})  manifest\.jsonl line (\d+)\n?")


class EvidenceError(Exception):
    """The evidence does not verify; the message names the first broken line and why."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


# ---- writing ---------------------------------------------------------------------------------


def check_evidence_target(directory: str | os.PathLike) -> None:
    """Refuse, before a scan starts, a folder that holds something or cannot be created.

    Evidence is never overwritten or mixed with other files.
    """
    target = Path(directory)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise FileExistsError(
            errno.EEXIST,
            "already exists and is not an empty folder; evidence is never overwritten",
            str(directory),
        )
    if not target.parent.is_dir():
        raise FileNotFoundError(errno.ENOENT, "its parent folder does not exist", str(directory))
    if not os.access(target.parent, os.W_OK):
        raise PermissionError(errno.EACCES, "its parent folder is not writable", str(directory))


def registry_digest(registry_path: str | os.PathLike) -> dict[str, Any]:
    """What the registry held: counts and a SHA-256 over (subject, label, photo SHA-256) rows.

    The digest is over the registry's contents, not its file bytes, which SQLite rewrites freely.
    """
    digest = hashlib.sha256()
    subjects = set()
    with Registry(registry_path) as registry:
        rows = sorted(json.dumps([p.subject, p.label, p.sha256]) for p in registry.photos())
    for row in rows:
        digest.update(row.encode() + b"\n")
        subjects.add(json.loads(row)[0])
    return {"photos": len(rows), "subjects": len(subjects), "sha256": digest.hexdigest()}


class _Chain:
    """Serialises lines, linking each to the previous one."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def add(self, body: dict[str, Any]) -> None:
        prev = sha256_hex(self.lines[-1]) if self.lines else GENESIS
        line = {"seq": len(self.lines) + 1, "prev": prev, **body}
        self.lines.append(json.dumps(line, ensure_ascii=True, separators=(",", ":")).encode())


def write_evidence(
    directory: str | os.PathLike,
    results: Iterable[FileResult],
    *,
    registry: str | os.PathLike | None,
    started: datetime,
    ended: datetime | None = None,
    thresholds: Thresholds | None = None,
    settings: dict[str, Any] | None = None,
    interrupted: bool = False,
) -> str:
    """Write the evidence folder atomically and return the hash of its last line.

    ``registry`` is None for ``counterfake pairs``, which compares the files with each other;
    a file's findings are then the pairs in which it is the derivative.

    Everything is written into a temporary folder beside ``directory`` that is renamed into
    place at the end: a crash leaves no half-written evidence under the expected name.
    """
    check_evidence_target(directory)
    target = Path(directory)
    temporary = Path(
        tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    )
    try:
        (temporary / MASKS).mkdir()
        (temporary / FRAMES).mkdir()
        chain = _Chain()
        chain.add(
            {
                "type": "header",
                "format": FORMAT,
                "tool": f"counterfake {__version__}",
                "software": {
                    "python": platform.python_version(),
                    "numpy": numpy.__version__,
                    "opencv": cv2.__version__,
                    "pillow": PIL.__version__,
                },
                "started": _iso(started),
                "settings": settings or {},
                "thresholds": asdict(thresholds or Thresholds()),
                "registry": None
                if registry is None
                else {"path": display_name(registry), **registry_digest(registry)},
            }
        )
        counts: Counter = Counter()
        for result in results:
            chain.add(_file_line(result, temporary, counts))
        chain.add(
            {
                "type": "end",
                "ended": _iso(ended or datetime.now(UTC)),
                "interrupted": interrupted,
                "files": counts["files"],
                "errors": counts["errors"],
                "matches": {
                    key.removeprefix("kind:"): value
                    for key, value in sorted(counts.items())
                    if key.startswith("kind:")
                },
                "masks": len(list((temporary / MASKS).iterdir())),
                "frames": len(list((temporary / FRAMES).iterdir())),
            }
        )
        (temporary / MANIFEST).write_bytes(b"".join(line + b"\n" for line in chain.lines))
        last = sha256_hex(chain.lines[-1])
        (temporary / ANCHOR).write_text(f"{last}  {MANIFEST} line {len(chain.lines)}\n")
        for path in (temporary, temporary / MASKS, temporary / FRAMES):
            path.chmod(0o755)
        os.rename(temporary, target)  # replaces an empty folder, never a full one
    except OSError as error:
        shutil.rmtree(temporary, ignore_errors=True)
        raise OSError(error.errno, error.strerror, str(directory)) from None
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return last


def _file_line(file_result: FileResult, folder: Path, counts: Counter) -> dict[str, Any]:
    result = file_result.to_json()
    counts["files"] += 1
    counts["errors"] += bool(result.get("error"))
    try:
        size = os.stat(result["path"]).st_size if result.get("sha256") else None
    except OSError:
        size = None
    findings = []
    for typed, match in zip(file_result.matches, result.get("matches") or [], strict=True):
        counts["matches"] += 1
        counts[f"kind:{match.get('kind')}"] += 1
        finding = {k: v for k, v in match.items() if k != "mask"}
        finding["mask"], finding["mask_sha256"] = _copy_mask(match.get("mask"), folder)
        if isinstance(typed, Finding) and typed.is_video:
            finding["frames"] = _strip_frames(file_result.path, typed, folder)
        findings.append(finding)
    line = {
        "type": "file",
        "path": result["path"],
        "sha256": result.get("sha256"),
        "size": size,
        "error": result.get("error"),
        "findings": findings,
    }
    if result.get("context"):
        line["context"] = result["context"]
    return line


def _copy_mask(mask: str | None, folder: Path) -> tuple[str | None, str | None]:
    """Copy a mask in under its own hash; (None, None) when there is none or it is gone."""
    if not mask:
        return None, None
    try:
        data = Path(mask).read_bytes()
    except OSError:
        return None, None
    digest = sha256_hex(data)
    name = f"{MASKS}/{digest}.png"
    (folder / name).write_bytes(data)
    return name, digest


def _strip_frames(path: str, match: Finding, folder: Path) -> list[dict[str, Any]]:
    """A video finding's strip of matched frames, written under their own hashes (none when
    the video can no longer be read)."""
    frames = []
    for frame in make_video_strip(path, strip_times(match)):
        data = base64.b64decode(frame.image.uri.split(",", 1)[1])
        digest = sha256_hex(data)
        name = f"{FRAMES}/{digest}.jpg"
        (folder / name).write_bytes(data)
        frames.append({"time": round(frame.time, 3), "file": name, "sha256": digest})
    return frames


# ---- verifying -------------------------------------------------------------------------------


def verify_evidence(directory: str | os.PathLike, *, expect: str | None = None) -> str:
    """Check the chain, the end anchor and every mask; a one-line summary, or EvidenceError.

    The error names the first line that does not verify and why. ``expect`` is the last-line
    hash kept elsewhere when the evidence was written.
    """
    folder = Path(directory)
    try:
        data = (folder / MANIFEST).read_bytes()
    except OSError as error:
        raise EvidenceError(f"{MANIFEST}: cannot be read ({error.strerror})") from None
    lines = data.split(b"\n")
    ends_cleanly = lines[-1] == b""
    if ends_cleanly:
        lines.pop()
    if not lines:
        raise EvidenceError(f"line 1: missing ({MANIFEST} is empty)")
    counts: Counter = Counter()
    for number, raw in enumerate(lines, 1):
        line = _parse(raw, number)
        _check_link(line, number, lines)
        _check_kind(line, number, len(lines))
        if line["type"] == "file":
            counts["files"] += 1
            counts["errors"] += bool(line.get("error"))
            for finding in line.get("findings") or []:
                counts["matches"] += 1
                counts["masks"] += _check_mask(finding, folder, number)
                counts["frames"] += _check_frames(finding, folder, number)
    if not ends_cleanly:
        raise EvidenceError(f"line {len(lines)}: has no line end (the manifest was truncated)")
    last = _check_anchor(folder, lines)
    if json.loads(lines[-1]).get("type") != "end":
        raise EvidenceError(f"line {len(lines)}: the closing line is missing (cut short)")
    _check_totals(json.loads(lines[-1]), counts, len(lines))
    if expect is not None and expect.strip().lower() != last:
        raise EvidenceError(
            f"{ANCHOR}: the last line's hash {last} is not the expected {expect.strip()}: "
            "the evidence was rewritten or is not the one you meant"
        )
    return (
        f"OK {folder}: {len(lines)} lines, chain intact; {counts['files']} files "
        f"({counts['errors']} unreadable), {counts['matches']} findings, "
        f"{counts['masks']} masks verified"
        + (f", {counts['frames']} video frames verified" if counts["frames"] else "")
        + f"; last line {last}"
    )


def _parse(raw: bytes, number: int) -> dict[str, Any]:
    try:
        line = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise EvidenceError(f"line {number}: not valid JSON (altered or truncated)") from None
    if not isinstance(line, dict):
        raise EvidenceError(f"line {number}: not a JSON object (altered)")
    return line


def _check_link(line: dict[str, Any], number: int, lines: list[bytes]) -> None:
    if line.get("seq") != number:
        raise EvidenceError(
            f"line {number}: says it is line {line.get('seq')!r}: lines were removed, inserted "
            "or reordered here"
        )
    expected = GENESIS if number == 1 else sha256_hex(lines[number - 2])
    if line.get("prev") != expected:
        where = "the chain's start" if number == 1 else f"line {number - 1}"
        raise EvidenceError(
            f"line {number - 1 if number > 1 else 1}: altered: its SHA-256 is not the one that "
            f"line {number} records for {where}"
        )


def _check_kind(line: dict[str, Any], number: int, total: int) -> None:
    """A header first, file lines, and an end line last (checked after the anchor)."""
    allowed: tuple[str, ...]
    if number == 1:
        allowed = ("header",)
    elif number == total:
        allowed = ("file", "end")  # a missing end line is reported by the anchor check
    else:
        allowed = ("file",)
    if line.get("type") not in allowed:
        raise EvidenceError(
            f"line {number}: is a {line.get('type')!r} line where a {allowed[-1]!r} line belongs"
        )


def _check_mask(finding: dict[str, Any], folder: Path, number: int) -> int:
    """1 if the finding's mask is present and intact, 0 if it has none; EvidenceError else."""
    name = finding.get("mask")
    if name is None:
        return 0
    if not isinstance(name, str) or not _MASK_NAME.fullmatch(name):
        raise EvidenceError(f"line {number}: mask {name!r} is not a file of the evidence's masks/")
    try:
        data = (folder / name).read_bytes()
    except OSError:
        raise EvidenceError(f"line {number}: mask {name} is missing") from None
    if sha256_hex(data) != finding.get("mask_sha256"):
        raise EvidenceError(f"line {number}: mask {name} was modified (its SHA-256 differs)")
    return 1


def _check_frames(finding: dict[str, Any], folder: Path, number: int) -> int:
    """How many strip frames the finding has, each present and intact; EvidenceError else."""
    frames = finding.get("frames") or []
    if not isinstance(frames, list):
        raise EvidenceError(f"line {number}: 'frames' is not a list (altered)")
    for frame in frames:
        name = frame.get("file") if isinstance(frame, dict) else None
        if not isinstance(name, str) or not _FRAME_NAME.fullmatch(name):
            raise EvidenceError(f"line {number}: frame {name!r} is not a file of frames/")
        try:
            data = (folder / name).read_bytes()
        except OSError:
            raise EvidenceError(f"line {number}: frame {name} is missing") from None
        if sha256_hex(data) != frame.get("sha256"):
            raise EvidenceError(f"line {number}: frame {name} was modified (its SHA-256 differs)")
    return len(frames)


def _check_anchor(folder: Path, lines: list[bytes]) -> str:
    """The manifest must end where manifest.sha256 says, with the line it names."""
    try:
        anchor = _ANCHOR_LINE.fullmatch((folder / ANCHOR).read_bytes())
    except OSError:
        raise EvidenceError(
            f"{ANCHOR}: missing, so the end of the manifest cannot be checked "
            "(lines may have been cut off the end)"
        ) from None
    if anchor is None:
        raise EvidenceError(f"{ANCHOR}: not in the expected form (altered)")
    recorded, count = anchor.group(1).decode(), int(anchor.group(2))
    if count > len(lines):
        raise EvidenceError(
            f"line {len(lines) + 1}: missing: {ANCHOR} records {count} lines but the manifest ends "
            f"after line {len(lines)} (truncated)"
        )
    if count < len(lines):
        raise EvidenceError(f"line {count + 1}: added after the recorded last line {count}")
    last = sha256_hex(lines[-1])
    if last != recorded:
        raise EvidenceError(
            f"line {len(lines)}: altered: its SHA-256 is not the one {ANCHOR} records"
        )
    return last


def _check_totals(end: dict[str, Any], counts: Counter, number: int) -> None:
    matches = end.get("matches") or {}
    if (end.get("files"), end.get("errors")) != (counts["files"], counts["errors"]) or sum(
        v for v in matches.values() if isinstance(v, int)
    ) != counts["matches"]:
        raise EvidenceError(f"line {number}: its totals do not match the lines before it")
