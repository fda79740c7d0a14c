"""What a scan reads: files and folders expanded into items, and one file read and decoded.

An item is a file path, an entry of a Telegram export, or (path, why it cannot be listed): every
input gives something to report, never an exception. Both drivers (scan.py, pairs/) read their
inputs through here.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator

import numpy as np

from counterfake.imaging import ImageError, decode_image, read_bytes
from counterfake.sources.files import WholeFolder, iter_image_files
from counterfake.sources.telegram import (
    ExportEntry,
    ExportSummary,
    is_telegram_export,
    iter_export,
)

Item = str | tuple[str, str] | ExportEntry
"""One thing to scan: a file path, (path, why it cannot be listed), or an export's entry."""


def item_key(item: Item) -> str:
    """What names one scanned item across runs, so that a resumed scan can skip it.

    A path alone is not enough in an export: two messages may show the same file.
    """
    if isinstance(item, tuple):
        return item[0]
    if isinstance(item, ExportEntry) and item.context is not None:
        chat = item.context.get("chat") or {}
        where = [chat.get("id"), chat.get("name"), item.context.get("message_id")]
        return json.dumps([item.path, *where, item.context.get("media")])
    return item if isinstance(item, str) else item.path


def image_files(paths: Iterable[str | os.PathLike]) -> Iterator[str | tuple[str, str]]:
    """File paths to read, and (path, one-line error) for what could not even be listed."""
    for item in iter_image_files(paths):
        yield (item.path, str(item)) if isinstance(item, ImageError) else str(item)


def expand(
    paths: Iterable[str | os.PathLike], exports: list[ExportSummary] | None = None
) -> Iterator[Item]:
    """What to scan: the files under ``paths``, except that a Telegram export (given, or found
    at any depth of a folder given) yields its entries instead; its summary is appended to
    ``exports``, filled in as the entries are read."""
    for item in iter_image_files(paths, read_whole=is_telegram_export):
        if isinstance(item, WholeFolder):
            summary = ExportSummary(str(item.path))
            if exports is not None:
                exports.append(summary)
            yield from iter_export(item.path, summary)
        elif isinstance(item, ImageError):
            yield (item.path, str(item))
        else:
            yield str(item)


def read_image(path: str, max_pixels: int) -> tuple[str, np.ndarray]:
    """Read and decode a file: (sha256 of its bytes, RGB pixels); ImageError on any problem."""
    data = read_bytes(path)
    return hashlib.sha256(data).hexdigest(), decode_image(data, path, max_pixels=max_pixels)
