"""Files and folders given on the command line, expanded to the image files in them."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from counterfake.imaging import IMAGE_SUFFIXES, ImageError, describe_os_error
from counterfake.video.decode import VIDEO_SUFFIXES

_LISTED_SUFFIXES = IMAGE_SUFFIXES | VIDEO_SUFFIXES


@dataclass(frozen=True)
class WholeFolder:
    """A folder met while listing that its own reader must take whole (a chat export)."""

    path: Path


def iter_image_files(
    paths: Iterable[str | os.PathLike],
    read_whole: Callable[[Path], bool] | None = None,
) -> Iterator[Path | ImageError | WholeFolder]:
    """Expand files and folders into the files to decode, in a stable order, never raising.

    - A file named explicitly is yielded whatever its suffix (the content decides the format).
    - A folder is walked recursively, depth first, entries sorted by name; it yields the entries
      whose suffix is in ``IMAGE_SUFFIXES`` or ``VIDEO_SUFFIXES`` (any case), and skips hidden
      entries (names starting with "."): ``.git``, thumbnail caches, macOS ``._`` forks.
    - Symbolic links to folders are followed, but each folder is listed once per call, so a link
      back to a parent cannot loop and a folder reached twice does not give its files twice.
    - A missing path, or a folder that cannot be listed, yields an ImageError (one line) in its
      place, so a scan reports it and goes on. Listing is iterative: any depth is safe.
    - A folder, given or met at any depth, for which ``read_whole`` is true is yielded as a
      WholeFolder and not walked: its files only make sense with the index beside them (a
      Telegram export's result.json says which chat and message each photo belongs to).
    """
    whole = read_whole or (lambda folder: False)
    seen: set[object] = set()
    for given in paths:
        path = Path(given)
        try:
            is_folder = stat.S_ISDIR(path.stat().st_mode)
        except FileNotFoundError:
            if path.is_symlink():
                yield path  # a broken link: read_bytes says so, in the scan's results
            else:
                yield ImageError(path, "no such file or folder")
            continue
        except OSError as error:
            yield ImageError(path, describe_os_error(error, path))
            continue
        except ValueError as error:  # e.g. an embedded NUL character
            yield ImageError(path, f"invalid path ({error})")
            continue
        if is_folder and whole(path):
            yield WholeFolder(path)
        elif is_folder:
            yield from _walk(path, seen, whole)
        else:
            yield path


def _walk(
    root: Path, seen: set[object], whole: Callable[[Path], bool]
) -> Iterator[Path | ImageError | WholeFolder]:
    pending: list[Iterator[os.DirEntry[str]]] = []
    problem = _enter(root, pending, seen)
    if problem is not None:
        yield problem
    while pending:
        entry = next(pending[-1], None)
        if entry is None:
            pending.pop()
            continue
        if entry.name.startswith("."):
            continue
        if _is_folder(entry) and whole(Path(entry.path)):
            yield WholeFolder(Path(entry.path))
        elif _is_folder(entry):
            problem = _enter(Path(entry.path), pending, seen)
            if problem is not None:
                yield problem
        elif os.path.splitext(entry.name)[1].lower() in _LISTED_SUFFIXES:
            yield Path(entry.path)


def _enter(
    folder: Path, pending: list[Iterator[os.DirEntry[str]]], seen: set[object]
) -> ImageError | None:
    """List ``folder`` onto ``pending`` unless already listed; an ImageError if it cannot be."""
    try:
        info = folder.stat()
        # (device, inode) names a folder however it is reached; some file systems give no
        # inode numbers, and there the resolved path has to do.
        key: object = (info.st_dev, info.st_ino) if info.st_ino else os.path.realpath(folder)
        if key in seen:
            return None
        with os.scandir(folder) as listing:
            entries = sorted(listing, key=lambda entry: entry.name)
    except OSError as error:
        return ImageError(folder, f"cannot read folder: {describe_os_error(error, folder)}")
    seen.add(key)
    pending.append(iter(entries))
    return None


def _is_folder(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()  # follows a symbolic link; _enter stops loops
    except OSError:
        return False
