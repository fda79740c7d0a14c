"""Files and folders given on the command line, expanded to the image files in them."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from counterfake.imaging import IMAGE_SUFFIXES, ImageError


def iter_image_files(paths: Iterable[str | os.PathLike]) -> Iterator[Path | ImageError]:
    """Expand files and folders (recursively, sorted, hidden entries skipped) into image files.

    A file named explicitly is yielded whatever its suffix; in a folder only IMAGE_SUFFIXES
    count. A missing path or an unreadable folder yields an ImageError instead of raising, so a
    scan reports it and goes on. Symlinked folders are not followed (no loops, no escapes).
    """
    for given in paths:
        path = Path(given)
        if path.is_dir():
            yield from _walk(path)
        elif path.exists() or path.is_symlink():
            yield path
        else:
            yield ImageError(path, "no such file or folder")


def _walk(folder: Path) -> Iterator[Path | ImageError]:
    try:
        entries = sorted(folder.iterdir())
    except OSError as error:
        yield ImageError(folder, f"cannot read folder: {error.strerror or error}")
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir() and not entry.is_symlink():
            yield from _walk(entry)
        elif entry.suffix.lower() in IMAGE_SUFFIXES:
            yield entry
