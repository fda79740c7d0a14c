"""A real scan for the report tests: the example photo registered, a folder of what a scan meets.

The folder holds a repost, a manipulated copy (the garment blurred), a stranger, an empty file,
and the manipulated copy again under a hostile name (``<script>alert(1)</script>.jpg``: the
folder ``<script>alert(1)<`` holds ``script>.jpg``). One result is given the Telegram context
that scans of chat exports carry.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
from conftest import EXAMPLES, blur_region, jpeg, save

from counterfake.registry import Registry
from counterfake.results import FileResult
from counterfake.scan import Scanner
from counterfake.signature.extract import make_signature

HOSTILE = "<script>alert(1)</script>.jpg"
CONTEXT = {
    "source": "telegram",
    "chat": {"name": "Leaks & <b>more</b>", "type": "public_channel", "id": 1234567},
    "message_id": 42,
    "date": "2024-03-01T10:20:30",
    "from": "Mallory",
    "from_id": "user99",
    "forwarded_from": '=HYPERLINK("http://evil")',
    "text": ["look at ", {"type": "bold", "text": "<img src=x onerror=alert(2)>"}],
    "media": "photo",
}


def make_scan(folder: Path, photo: np.ndarray, garment: np.ndarray) -> tuple[str, list[FileResult]]:
    """Register the example photo in ``folder``/r.db, scan ``folder``/downloaded: (db, results)."""
    downloaded = folder / "downloaded"
    save(downloaded / "a_repost.jpg", jpeg(cv2.resize(photo, (240, 320)), 70))
    save(downloaded / "b_fake.png", blur_region(photo, garment))
    save(downloaded / HOSTILE, jpeg(blur_region(photo, garment), 90))
    save(
        downloaded / "c_stranger.jpg",
        cv2.imread(str(EXAMPLES / "downloaded" / "unrelated.jpg"))[:, :, ::-1],
    )
    (downloaded / "d_empty.jpg").write_bytes(b"")
    db = str(folder / "r.db")
    data = (EXAMPLES / "registered" / "photo.jpg").read_bytes()
    signature = make_signature(photo, "photos/beach <day>.jpg", hashlib.sha256(data).hexdigest())
    with Registry(db) as registry:
        registry.register("alice", [signature])
    results = list(Scanner(db).scan([downloaded], masks_dir=folder / "masks", workers=1))
    for result in results:
        if result.path.endswith("b_fake.png"):
            result.context = CONTEXT
    return db, results
