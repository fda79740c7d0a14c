"""What both readers of a Telegram export share (telegram.py reads JSON exports,
telegram_html.py HTML ones): the entries they yield, the summary they fill in, the one check
every path from the export goes through, and the context a scan result carries.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "LEAVES",
    "ExportEntry",
    "ExportFolder",
    "ExportSummary",
    "message_context",
    "plain_text",
]

LEAVES = "it leaves the export folder (through a link)"


@dataclass(frozen=True)
class ExportEntry:
    """One image of an export to scan, or one problem to report in its place.

    ``path`` is what a reader sees (the export's folder joined with the path the export gives);
    ``source`` is the file to open: the same file, links resolved and checked to lie inside the
    export. ``error`` (one line) is set instead of ``source`` for a refused path or a broken
    ``result.json``; ``context`` says where the image was posted (see ``message_context``).
    """

    path: str
    context: dict[str, Any] | None
    source: str | None = None
    error: str | None = None


@dataclass
class ExportSummary:
    """What one export held; filled in while its entries are read.

    ``not_included_by_chat`` counts, per chat, the media that the export names but did not
    download: an investigator needs to know what she has not seen, and where to look again.
    """

    path: str
    format: str = "json"
    chats: int = 0
    messages: int = 0
    images: int = 0
    refused: int = 0
    not_included_by_reason: dict[str, int] = field(default_factory=dict)
    not_included_by_chat: dict[tuple[Any, Any, Any], int] = field(default_factory=dict)
    error: str | None = None

    def count_not_included(self, chat: dict[str, Any], reason: str) -> None:
        self.not_included_by_reason[reason] = self.not_included_by_reason.get(reason, 0) + 1
        key = (chat.get("name"), chat.get("type"), chat.get("id"))
        self.not_included_by_chat[key] = self.not_included_by_chat.get(key, 0) + 1

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "chats": self.chats,
            "messages": self.messages,
            "images": self.images,
            "not_included": sum(self.not_included_by_reason.values()),
            "not_included_by_reason": dict(sorted(self.not_included_by_reason.items())),
            "not_included_by_chat": [
                {"chat": {"name": name, "type": kind, "id": id_}, "not_included": count}
                for (name, kind, id_), count in self.not_included_by_chat.items()
            ],
            "refused_paths": self.refused,
            "error": self.error,
        }


def message_context(chat: dict[str, Any], message: dict[str, Any], media: str) -> dict[str, Any]:
    """Where an image was posted, in the shape every scan result carries as ``context``.

    ``message`` uses the JSON export's keys; values are kept as the export gives them (``date``
    is the exporter's local time, ``date_unixtime`` the same instant in seconds, a string).
    """
    return {
        "source": "telegram",
        "chat": {key: _scalar(chat.get(key)) for key in ("name", "type", "id")},
        "message_id": _scalar(message.get("id")),
        "date": _scalar(message.get("date")),
        "date_unixtime": _scalar(message.get("date_unixtime")),
        "from": _scalar(message.get("from", message.get("actor"))),
        "from_id": _scalar(message.get("from_id", message.get("actor_id"))),
        "forwarded_from": _scalar(message.get("forwarded_from")),
        "text": plain_text(message.get("text")),
        "media": media,
    }


def plain_text(text: Any) -> str | None:
    """A message's ``text`` (a string, or a list of strings and ``{"text": ...}`` parts) flat."""
    if isinstance(text, str):
        return text or None
    if isinstance(text, list):
        parts = [part.get("text") if isinstance(part, dict) else part for part in text]
        return "".join(part for part in parts if isinstance(part, str)) or None
    return None


def _scalar(value: Any) -> str | int | None:
    """Only strings and integers pass; a hostile export cannot put objects in a report."""
    if isinstance(value, bool):
        return None
    return value if isinstance(value, (str, int)) else None


class ExportFolder:
    """The export's root, and the one check every path from the export goes through."""

    def __init__(self, root: Path, summary: ExportSummary) -> None:
        self.root = root
        self.real_root = os.path.realpath(root)
        self.summary = summary

    def entry(
        self, written: str, context: dict[str, Any], *, base: Path | None = None
    ) -> ExportEntry:
        """The entry for a media path as the export writes it, refused if it leaves the root.

        ``base`` is the folder the path is relative to: the root for JSON, an HTML page's folder
        for HTML, where a ``..`` part is allowed as long as the result stays inside the root.
        """
        # os.path, not pathlib: pathlib interns every part, which grows with a large export.
        base_folder = str(base or self.root)
        shown = os.path.join(str(self.root), written) if "\x00" not in written else repr(written)
        problem = self._refusal(written, allow_parent=base is not None)
        resolved: str | None = None
        if problem is None:
            joined = os.path.join(base_folder, written)
            resolved = os.path.realpath(joined)
            if not self.holds(resolved):
                problem = "it leaves the export folder (through a link or '..')"
            else:
                shown = os.path.normpath(joined)
        if problem is not None:
            self.summary.refused += 1
            where = f"message {context.get('message_id')} in chat {chat_name(context)}"
            return ExportEntry(shown, context, error=f"{shown}: refused, {problem} ({where})")
        self.summary.images += 1
        return ExportEntry(shown, context, source=resolved)

    def holds(self, path: str | os.PathLike) -> bool:
        """Whether ``path``, links resolved, lies inside the export."""
        resolved = os.path.realpath(path)
        return os.path.commonpath([resolved, self.real_root]) == self.real_root

    @staticmethod
    def _refusal(written: str, *, allow_parent: bool) -> str | None:
        if not written or "\x00" in written:
            return "not a usable path"
        if written.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", written) or "://" in written:
            return "absolute path"
        if not allow_parent and ".." in re.split(r"[/\\]", written):
            return "path with '..'"
        return None


def chat_name(context: dict[str, Any]) -> str:
    chat = context.get("chat") or {}
    return str(chat.get("name") or chat.get("id") or "?")
