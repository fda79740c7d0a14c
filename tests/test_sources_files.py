"""Listing: files and folders named on the command line become the files to decode."""

from __future__ import annotations

import inspect
import os
import sys
from pathlib import Path

import pytest

from counterfake.imaging import IMAGE_SUFFIXES, ImageError
from counterfake.sources.files import WholeFolder, iter_image_files

RUNNING_AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# ------------------------------------------------------------------------ listing files


def test_folders_are_walked_recursively_sorted_skipping_hidden_and_other_files(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / ".cache").mkdir()
    for name in ("b/2.PNG", "a.jpg", ".hidden.jpg", "notes.txt", "b/1.webp", ".cache/x.jpg"):
        (tmp_path / name).write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in iter_image_files([tmp_path])]
    assert found == ["a.jpg", "b/1.webp", "b/2.PNG"]


def test_folders_read_whole_are_yielded_at_any_depth_and_not_walked(tmp_path):
    for name in ("a.jpg", "case/export/photos/p.jpg", "case/export/result.json", "case/z.jpg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")

    def is_export(folder: Path) -> bool:
        return (folder / "result.json").is_file()

    found = list(iter_image_files([tmp_path, tmp_path / "case" / "export"], read_whole=is_export))
    export = WholeFolder(tmp_path / "case" / "export")
    assert found == [tmp_path / "a.jpg", export, tmp_path / "case" / "z.jpg", export]


def test_a_named_file_is_listed_whatever_its_suffix(tmp_path):
    notes = write(tmp_path / "notes.txt", b"x")
    assert list(iter_image_files([notes])) == [notes]


def test_image_suffixes_are_lower_case_and_cover_phone_formats():
    assert all(suffix == suffix.lower() and suffix.startswith(".") for suffix in IMAGE_SUFFIXES)
    assert {".jpg", ".jpeg", ".png", ".webp", ".gif", ".heic", ".tif"} <= IMAGE_SUFFIXES


def test_missing_paths_are_reported_not_raised(tmp_path):
    items = list(iter_image_files([tmp_path / "absent", tmp_path / "also-absent.jpg"]))
    assert len(items) == 2 and all(isinstance(item, ImageError) for item in items)
    assert "absent: no such file or folder" in str(items[0]) and "\n" not in str(items[0])


@pytest.mark.skipif(RUNNING_AS_ROOT, reason="root lists folders whatever their permissions")
def test_unreadable_folder_is_reported(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        [item] = list(iter_image_files([locked]))
        assert isinstance(item, ImageError) and "cannot read folder: permission denied" in str(item)
    finally:
        locked.chmod(0o755)


def test_a_folder_that_cannot_be_listed_does_not_stop_the_walk(tmp_path, monkeypatch):
    """The same, by simulation, so it also runs as root."""
    for name in ("a/1.jpg", "b/2.jpg", "c/3.jpg"):
        (tmp_path / name).parent.mkdir()
        (tmp_path / name).write_bytes(b"x")
    real_scandir = os.scandir

    def scandir(path):
        if Path(path).name == "b":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    items = list(iter_image_files([tmp_path]))
    assert [item.name for item in items if isinstance(item, Path)] == ["1.jpg", "3.jpg"]
    [error] = [item for item in items if isinstance(item, ImageError)]
    assert str(error) == f"{tmp_path / 'b'}: cannot read folder: permission denied"


def test_symlinked_folders_are_followed_but_never_loop(tmp_path):
    (tmp_path / "album").mkdir()
    (tmp_path / "album" / "a.jpg").write_bytes(b"x")
    (tmp_path / "album" / "loop").symlink_to(tmp_path / "album")
    (tmp_path / "link").symlink_to(tmp_path / "album")  # the same folder by a second route
    found = [p.relative_to(tmp_path).as_posix() for p in iter_image_files([tmp_path])]
    assert found == ["album/a.jpg"]


def test_a_very_deep_folder_does_not_exhaust_the_stack(tmp_path):
    deep = str(tmp_path)
    for _ in range(300):
        deep = os.path.join(deep, "d")
        os.mkdir(deep)  # one level at a time: pathlib's mkdir(parents=True) itself recurses
    write(Path(deep, "bottom.jpg"), b"x")
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack()) + 100)  # far fewer frames than levels
    try:
        found = [p.name for p in iter_image_files([tmp_path])]
    finally:
        sys.setrecursionlimit(limit)
    assert found == ["bottom.jpg"]
