"""The journal that lets an interrupted scan resume: finished results, one JSON line each.

A scan written to ``out.json`` keeps ``out.json.journal`` beside it while it runs. Its first
line says what was scanned (inputs, registry, settings); every later line is one finished
``FileResult``, written and flushed as soon as it is known, so a scan killed at any moment
(Ctrl-C, SIGKILL, power cut after the flush reached the disk) loses at most the results in
flight. Run again with the same inputs, the scan reads the journal, skips what it holds and
yields those results in their place: every file once, none twice. When the final JSON is written
(atomically) the journal is removed.

A journal from other inputs is never overwritten: its results are someone's work, and a
mistyped path should not throw them away.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

from counterfake.atomic import atomic_writer
from counterfake.results import FileResult

__all__ = ["Journal", "JournalError", "journal_path"]

_VERSION = 1


class JournalError(Exception):
    """A journal that cannot be used for this scan (one line, naming the file)."""


def journal_path(output: str | os.PathLike) -> Path:
    return Path(f"{output}.journal")


class Journal:
    """Open (or resume) the journal of the scan that writes ``output``.

    ``done`` maps ``FileResult.key`` to the results the journal already holds.
    """

    def __init__(self, output: str | os.PathLike, scan: dict[str, Any]) -> None:
        self.path = journal_path(output)
        self.header = {"counterfake_journal": _VERSION, "scan": scan}
        self.done: dict[str, FileResult] = {}
        if self.path.exists():
            self._load()
        self._rewrite()
        self._stream: IO[str] | None = open(self.path, "a", encoding="utf-8")  # noqa: SIM115

    def _load(self) -> None:
        """Read what an earlier run finished; a last line cut short by a kill is dropped."""
        with open(self.path, encoding="utf-8", errors="replace") as stream:
            lines = stream.read().splitlines()
        try:
            header = json.loads(lines[0]) if lines else None
        except json.JSONDecodeError:
            header = None
        if not isinstance(header, dict) or header.get("counterfake_journal") != _VERSION:
            raise JournalError(f"{self.path}: not a counterfake scan journal; move it away")
        if header.get("scan") != self.header["scan"]:
            raise JournalError(
                f"{self.path}: left by an interrupted scan of other inputs or settings; "
                "run that scan again to finish it, or delete the journal"
            )
        for number, line in enumerate(lines[1:], start=2):
            try:
                result = FileResult.from_json(json.loads(line))
            except (json.JSONDecodeError, KeyError, TypeError) as error:
                if number == len(lines):
                    break  # the line being written when the scan was killed
                raise JournalError(f"{self.path}: line {number} is damaged ({error})") from None
            self.done[result.key] = result

    def _rewrite(self) -> None:
        """Start the file afresh with the header and the results kept, replacing it atomically,
        so that appending never continues a line cut short."""
        with atomic_writer(self.path) as stream:
            stream.write(json.dumps(self.header) + "\n")
            for result in self.done.values():
                stream.write(json.dumps(result.to_json()) + "\n")

    def add(self, result: FileResult) -> None:
        """Record one finished result (skipped if it came from this journal)."""
        if self._stream is None or result.key in self.done:
            return
        self._stream.write(json.dumps(result.to_json()) + "\n")
        self._stream.flush()

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def remove(self) -> None:
        """The scan is complete and its JSON written: the journal has done its work."""
        self.close()
        self.path.unlink(missing_ok=True)
