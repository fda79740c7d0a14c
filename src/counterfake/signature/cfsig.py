"""The ``.cfsig`` file: signatures only, versioned, self-describing, checked on load.

A person hashes her photos on her own machine and hands over only this file. It may also arrive
from anywhere, so loading trusts nothing: the magic bytes, the version, a SHA-256 over the whole
file, every array's type, shape and position are checked, and any problem is one clear error.

Layout::

    MAGIC (8 bytes) | header length (uint32, little-endian) | header (UTF-8 JSON)
    | payload (the arrays, back to back) | SHA-256 of everything before it (32 bytes)

The header names the format and version, the tool that wrote it, the extraction parameters, and
for each signature its fields and where each of its arrays lies in the payload.

Version 2 adds videos: the header's ``videos`` list holds each video's label, digests, duration,
size, sampled times and vPDQ, and its frames' signatures are entries of ``signatures`` marked
``"video": n`` (the video's place in that list).

Version 3 stores each signature as its compact record (signature/record.py: about 24 kB, one
orientation's features, packed keypoints, a compressed grid), which the entry names by
``"record": [offset, length]``; the registry stores the same records. Versions 1 and 2 (each
array of float32 keypoints listed in the entry, the mirror image's features too) are still read
and converted on load: what is registered from them is stored as records, so an old file needs
no migration. Only version 3 is written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import struct
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from counterfake import __version__
from counterfake.atomic import atomic_writer
from counterfake.imaging import MAX_SIDE
from counterfake.signature.extract import REFERENCE_SIDE, Signature
from counterfake.signature.features import DESCRIPTOR_BYTES, LocalFeatures
from counterfake.signature.grid import GRID_CHANNELS, GRID_COLS, GRID_ROWS
from counterfake.signature.pdq import DIHEDRAL_ORIENTATIONS, PdqHash
from counterfake.signature.record import check_storable, decode, encode
from counterfake.text import one_line

if TYPE_CHECKING:
    from counterfake.video.signature import VideoSignature

MAGIC = b"CFSIG\x00\r\n"
FORMAT_NAME = "counterfake-signatures"
FORMAT_VERSION = 3
READ_VERSIONS = (1, 2, 3)
PARAMETERS = {
    "features": "ORB-256",
    "reference_side": REFERENCE_SIDE,
    "grid": [GRID_ROWS, GRID_COLS, GRID_CHANNELS],
}
_FEATURE_FIELDS = {  # name: (dtype, trailing shape)
    "xy": ("float32", (2,)),
    "size": ("float32", ()),
    "angle": ("float32", ()),
    "octave": ("int8", ()),
    "descriptors": ("uint8", (DESCRIPTOR_BYTES,)),
}
_MAX_HEADER = 256 * 1024 * 1024
MAX_LABEL = 1024  # characters of a photo's label (its file name or path, as hashed)
_SHA256 = re.compile("[0-9a-fA-F]{64}")


class SignatureFileError(Exception):
    """A signature file or blob that cannot be used; the message is one line."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name
        self.problem = problem


class TooManySignatures(SignatureFileError):
    """A signature file holds more signatures than the reader accepts."""


@dataclass
class Contents:
    """What a .cfsig file holds: photos' signatures and videos' signatures."""

    photos: list[Signature] = dataclasses.field(default_factory=list)
    videos: list[VideoSignature] = dataclasses.field(default_factory=list)


def dumps(signatures: Iterable[Signature], videos: Iterable[VideoSignature] = ()) -> bytes:
    """Serialise signatures (and videos) to the bytes of a .cfsig file: each signature's
    record; a signature holding its mirror image's features is a scanned image's, to be
    matched, and keeps all its features (signature/record.py)."""
    payload = bytearray()
    entries = []
    videos = list(videos)
    framed = [(sig, None) for sig in signatures] + [
        (frame, number) for number, video in enumerate(videos) for frame in video.frames
    ]
    for sig, video in framed:
        record = encode(sig, scanned=len(sig.mirrored) > 0)
        entries.append(
            {"label": sig.label, "sha256": sig.sha256, "record": [len(payload), len(record)]}
            | ({} if video is None else {"video": video})
        )
        payload.extend(record)
    header = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "tool": f"counterfake {__version__}",
        "parameters": PARAMETERS,
        "signatures": entries,
    }
    if videos:
        header["videos"] = [_video_entry(video) for video in videos]
    header_bytes = json.dumps(header, separators=(",", ":")).encode()
    body = MAGIC + struct.pack("<I", len(header_bytes)) + header_bytes + bytes(payload)
    return body + hashlib.sha256(body).digest()


def _video_entry(video: VideoSignature) -> dict[str, Any]:
    return {
        "label": video.label,
        "sha256": video.sha256,
        "md5": video.md5,
        "duration": video.duration,
        "size": [video.width, video.height],
        "times": list(video.times),
        "vpdq": [feature.line() for feature in video.vpdq],
    }


def loads(data: bytes, name: str, max_signatures: int | None = None) -> list[Signature]:
    """The photos' signatures in the bytes of a .cfsig file (see :func:`loads_contents`)."""
    return loads_contents(data, name, max_signatures).photos


def loads_contents(data: bytes, name: str, max_signatures: int | None = None) -> Contents:
    """Parse and check the bytes of a .cfsig file; ``name`` is used in error messages.

    With ``max_signatures``, a file holding more signatures (a video's frames count) is refused
    (TooManySignatures) before any of its arrays is read."""
    if len(data) < len(MAGIC) + 4 + 32 or not data.startswith(MAGIC):
        raise SignatureFileError(name, "not a counterfake signature file (.cfsig)")
    body, checksum = data[:-32], data[-32:]
    if hashlib.sha256(body).digest() != checksum:
        raise SignatureFileError(name, "checksum mismatch: the file is damaged or was altered")
    (header_length,) = struct.unpack_from("<I", body, len(MAGIC))
    start = len(MAGIC) + 4
    if header_length > min(_MAX_HEADER, len(body) - start):
        raise SignatureFileError(name, "header length runs past the end of the file")
    try:
        header = json.loads(body[start : start + header_length])
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SignatureFileError(name, f"header is not valid JSON ({error})") from None
    except RecursionError:
        raise SignatureFileError(
            name, "header is not a signature header (JSON nested too deeply)"
        ) from None
    payload = body[start + header_length :]
    _check_header(header, name)
    if max_signatures is not None and len(header["signatures"]) > max_signatures:
        raise TooManySignatures(
            name, f"{len(header['signatures'])} signatures; the limit is {max_signatures}"
        )
    contents = Contents()
    videos = header.get("videos", [])
    frames: list[list[Signature]] = [[] for _ in videos]
    for number, entry in enumerate(header["signatures"], 1):
        try:
            if header["version"] < 3:
                signature = _signature_from_entry(entry, payload, name)
            else:
                signature = _signature_from_record(entry, payload)
            check_signature(signature)
            video = entry.get("video")
            if video is not None:
                frames[_whole(video, "video", 0, len(videos) - 1)].append(signature)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            problem = _one_line(str(error))
            raise SignatureFileError(
                name, f"malformed signature entry {number} ({problem})"
            ) from None
        if video is None:
            contents.photos.append(signature)
    for number, (entry, video_frames) in enumerate(zip(videos, frames, strict=True), 1):
        try:
            contents.videos.append(_video_from_entry(entry, video_frames))
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            problem = _one_line(str(error))
            raise SignatureFileError(name, f"malformed video entry {number} ({problem})") from None
    return contents


def _video_from_entry(entry: dict, frames: list[Signature]) -> VideoSignature:
    from counterfake.video.signature import VideoSignature
    from counterfake.video.vpdq import feature_from_line

    times = tuple(float(t) for t in entry["times"])
    if len(times) != len(frames) or list(times) != sorted(times):
        raise ValueError("times must be increasing, one per frame")
    width, height = (_whole(n, "size", 1, MAX_SIDE) for n in entry["size"])
    md5 = entry["md5"]
    if not isinstance(md5, str) or not re.fullmatch("[0-9a-f]{32}", md5):
        raise ValueError("md5 must be 32 lower-case hexadecimal digits")
    duration = float(entry["duration"])
    if not 0 <= duration < 1e7:
        raise ValueError("duration out of range")
    return VideoSignature(
        label=check_label(entry["label"]),
        sha256=check_sha256(entry["sha256"]),
        md5=md5,
        duration=duration,
        width=width,
        height=height,
        times=times,
        frames=tuple(frames),
        vpdq=tuple(feature_from_line(line) for line in entry["vpdq"]),
    )


def _one_line(text: str) -> str:
    """A problem as one printable line of bounded length, whatever the file put in it."""
    return one_line(text)[:200]


def _check_header(header: Any, name: str) -> None:
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise SignatureFileError(name, "header does not name the counterfake signature format")
    version = header.get("version")
    if version not in READ_VERSIONS:
        raise SignatureFileError(
            name, f"format version {version!r} is not supported (this tool reads versions 1 to 3)"
        )
    if header.get("parameters") != PARAMETERS:
        raise SignatureFileError(
            name, "signatures were made with other extraction parameters; hash the photos again"
        )
    if not isinstance(header.get("signatures"), list):
        raise SignatureFileError(name, "header has no list of signatures")
    if not isinstance(header.get("videos", []), list):
        raise SignatureFileError(name, "header's videos are not a list")


def _array(spec: Any, payload: bytes, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    """Read one array, insisting on the expected dtype and shape (``-1`` = any row count)."""
    offset, stored_dtype, stored_shape = spec
    stored_shape = tuple(int(n) for n in stored_shape)
    if stored_dtype != dtype or len(stored_shape) != len(shape):
        raise ValueError(f"array has type {stored_dtype} {stored_shape}, expected {dtype} {shape}")
    if any(want not in (-1, got) for want, got in zip(shape, stored_shape, strict=True)):
        raise ValueError(f"array has shape {stored_shape}, expected {shape}")
    count = int(np.prod(stored_shape))
    length = count * np.dtype(dtype).itemsize
    if not 0 <= offset <= len(payload) - length:
        raise ValueError("array lies outside the payload")
    return np.frombuffer(payload, dtype, count, offset).reshape(stored_shape).copy()


def _features(arrays: dict, side: str, payload: bytes) -> LocalFeatures:
    loaded = {
        field: _array(arrays[f"{side}.{field}"], payload, dtype, (-1, *trailing))
        for field, (dtype, trailing) in _FEATURE_FIELDS.items()
    }
    if len({len(a) for a in loaded.values()}) != 1:
        raise ValueError(f"{side} arrays disagree on the number of features")
    return LocalFeatures(**loaded)


def check_label(label: object) -> str:
    """A photo's label as the registry keeps it: text of 1 to MAX_LABEL printable characters
    (control and bidirectional-override characters would break or disguise a report line).
    Raises ValueError naming the problem."""
    if not isinstance(label, str):
        raise ValueError(f"label must be text, not {type(label).__name__}")
    if not 1 <= len(label) <= MAX_LABEL:
        raise ValueError(f"label must be 1 to {MAX_LABEL} characters, not {len(label)}")
    if any(_unprintable(char) for char in label):
        raise ValueError(f"label {label[:40]!r} holds control characters")
    return label


def label_for(path: str) -> str:
    """A file's path as a label that :func:`check_label` accepts: unprintable characters
    backslash-escaped, and only the last MAX_LABEL characters of a longer path kept."""
    escaped = "".join(
        char.encode("unicode_escape").decode("ascii") if _unprintable(char) else char
        for char in path
    )
    return escaped[-MAX_LABEL:] or "unnamed"


def check_sha256(sha256: object) -> str:
    """A photo file's SHA-256: 64 hexadecimal digits (returned in lower case)."""
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise ValueError(f"sha256 must be 64 hexadecimal digits, not {str(sha256)[:80]!r}")
    return sha256.lower()


def check_signature(signature: Signature) -> None:
    """Every field a registry stores, checked in one place: what ``loads`` reads from a file
    and what is registered from photos (registry.register) pass the same checks.
    Raises ValueError naming the field."""
    check_label(signature.label)
    check_sha256(signature.sha256)
    if set(signature.pdq) - set(DIHEDRAL_ORIENTATIONS) or "original" not in signature.pdq:
        raise ValueError(f"PDQ orientations must be among {', '.join(DIHEDRAL_ORIENTATIONS)}")
    check_storable(signature)


def _unprintable(char: str) -> bool:
    return unicodedata.category(char) in ("Cc", "Cf", "Cs", "Zl", "Zp")


def _whole(value: object, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{field} must be a whole number from {low} to {high}")
    return value


def _signature_from_record(entry: dict, payload: bytes) -> Signature:
    offset, length = (_whole(n, "record", 0, len(payload)) for n in entry["record"])
    if offset + length > len(payload):
        raise ValueError("record lies outside the payload")
    label, sha256 = check_label(entry["label"]), check_sha256(entry["sha256"])
    return decode(payload[offset : offset + length], label, sha256)


def _signature_from_entry(entry: dict, payload: bytes, name: str) -> Signature:
    """A signature of a version 1 or 2 file (see the module's docstring)."""
    arrays = entry["arrays"]
    if not isinstance(arrays, dict) or not isinstance(entry["pdq"], dict):
        raise ValueError("'arrays' and 'pdq' must be objects")
    for field in ("size", "frame"):
        if not isinstance(entry[field], list) or len(entry[field]) != 2:
            raise ValueError(f"{field} must be [width, height]")
    width, height = (_whole(n, "size", 1, MAX_SIDE) for n in entry["size"])
    frame_width, frame_height = (_whole(n, "frame", 1, MAX_SIDE) for n in entry["frame"])
    quality = _whole(entry["pdq_quality"], "pdq_quality", 0, 100)
    pdq = {
        str(orientation): PdqHash.from_hex(_hex(text), quality)
        for orientation, text in entry["pdq"].items()
    }
    if "original" not in pdq:
        raise ValueError("no PDQ hash for the original orientation")
    return Signature(
        label=check_label(entry["label"]),
        sha256=check_sha256(entry["sha256"]),
        width=width,
        height=height,
        frame_width=frame_width,
        frame_height=frame_height,
        pdq=pdq,
        features=_features(arrays, "features", payload),
        mirrored=_features(arrays, "mirrored", payload),
        grid=_array(arrays["grid"], payload, "uint8", (GRID_ROWS, GRID_COLS, GRID_CHANNELS)),
        face=_face(arrays["face"], payload),
    )


def _hex(text: object) -> str:
    if not isinstance(text, str):
        raise ValueError("a PDQ hash must be text")
    return text


def _face(spec: Any, payload: bytes) -> np.ndarray:
    face = _array(spec, payload, "int32", (-1,))
    if len(face) not in (0, 4) or (len(face) and min(face[2:]) < 1):
        raise ValueError("a face box is [x, y, width, height] with a positive size")
    return face


def write(
    path: str | os.PathLike,
    signatures: Iterable[Signature],
    videos: Iterable[VideoSignature] = (),
) -> None:
    """Write a .cfsig file atomically (a crash never leaves half a file under the final name)."""
    content = dumps(signatures, videos)
    with atomic_writer(path, encoding=None) as file:
        file.write(content)


def read(path: str | os.PathLike) -> list[Signature]:
    """Read and check a .cfsig file: its photos' signatures."""
    return read_contents(path).photos


def read_contents(path: str | os.PathLike) -> Contents:
    """Read and check a .cfsig file: photos and videos."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise SignatureFileError(str(path), error.strerror or str(error)) from None
    return loads_contents(data, str(path))
