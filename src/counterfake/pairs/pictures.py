"""The collection's images: what a pairs run reads, and what it notes of each file."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from counterfake.inputs import Item, expand
from counterfake.pairs.model import Picture
from counterfake.sources.telegram import ExportEntry, ExportSummary
from counterfake.video.decode import is_animation, is_video_path
from counterfake.video.pairs import VideoItem


def collection_items(
    paths: Iterable[str | os.PathLike], exports: list[ExportSummary] | None
) -> Iterator[Item]:
    """What a scan would read under ``paths``; a folder with no image in it is an error."""
    for path in paths:
        empty = True
        for item in expand([path], exports):
            empty = False
            yield item
        if empty and Path(path).is_dir():
            yield (str(path), f"{path}: no images in this folder")


def split_videos(items: Iterable[Item]) -> tuple[list[Item], list[VideoItem]]:
    """The items that are pictures, and the videos (paired among themselves by video/pairs.py)."""
    pictures: list[Item] = []
    videos: list[VideoItem] = []
    for item in items:
        video = as_video(item)
        if video is None:
            pictures.append(item)
        else:
            videos.append(video)
    return pictures, videos


def as_video(item: Item) -> VideoItem | None:
    """The item as a video of the collection, or None if it is not one."""
    if isinstance(item, tuple):
        return None
    if isinstance(item, ExportEntry):
        if item.source is None:
            return None
        file, path, context = item.source, item.path, item.context
    else:
        file, path, context = item, item, None
    if is_video_path(file) or is_animation(file):
        return VideoItem(path, file, context)
    return None


def picture_of(key: int, item: Item) -> Picture:
    """The picture for one item, keeping the error of one that cannot be read."""
    if isinstance(item, tuple):
        return Picture(key, item[0], None, error=item[1])
    if isinstance(item, ExportEntry):
        return Picture(key, item.path, item.source, item.context, error=item.error)
    return Picture(key, item, item)


def jpeg_quantisation(path: str) -> float:
    """The mean of a JPEG's luminance quantisation table: how coarsely it was last saved.

    A re-saved copy is usually saved more coarsely than what it was made from. Only the
    header is read; anything that is not a JPEG gives 0.
    """
    try:
        with PILImage.open(path) as image:
            tables = getattr(image, "quantization", None) or {}
    except Exception:  # a file that decoded a moment ago; any failure only loses this hint
        return 0.0
    table = tables.get(0)
    return float(np.mean(table)) if table else 0.0
