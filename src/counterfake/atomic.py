"""Atomic output files: a reader never sees half a file, and a failed or killed write leaves
the file as it was and nothing beside it.

Every file counterfake writes whole (reports, the scan's JSON, the journal's rewrite) goes
through ``atomic_writer``.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


@contextmanager
def atomic_writer(
    path: str | os.PathLike, *, encoding: str | None = "utf-8", errors: str = "strict"
) -> Iterator[IO]:
    """Open a temporary file beside ``path``; it replaces ``path`` only if the block succeeds.

    The temporary file lives in the same folder so that the final ``os.replace`` is a rename on
    one file system. Any OSError names ``path`` itself, not the temporary file, so the command
    line can print it as one line.
    """
    target = Path(path)
    try:
        handle, temporary = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".partial", dir=target.parent
        )
    except OSError as error:
        raise OSError(error.errno, error.strerror, str(path)) from None
    try:
        if encoding:
            with open(handle, "w", encoding=encoding, errors=errors, newline="") as text:
                yield text
        else:
            with open(handle, "wb") as binary:
                yield binary
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise OSError(error.errno, error.strerror, str(path)) from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def check_writable(path: str | os.PathLike) -> None:
    """Fail now, with an OSError naming ``path``, if it cannot be written at the end of a scan.

    A scan can take hours; finding out only then that the report's folder does not exist would
    waste them.
    """
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
    if not target.parent.is_dir():
        raise FileNotFoundError(
            errno.ENOENT, "No such file or directory (its folder does not exist)", str(path)
        )
    if not os.access(target.parent, os.W_OK):
        raise PermissionError(errno.EACCES, "its folder is not writable", str(path))
