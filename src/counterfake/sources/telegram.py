"""Telegram Desktop exports ("Export chat history"): every image in them, with its message.

An investigator or a helpline gets a channel or a group as a Telegram Desktop export. This module
finds the images in it and says, for each, where it was posted: chat, message, date, sender,
where it was forwarded from and what the message said. It reads, never writes, and it treats the
export as hostile: it may come from the people who run the channel.

The format, as Telegram Desktop writes it (``Telegram/SourceFiles/export/output/
export_output_json.cpp`` and ``export/data/export_data_types.cpp`` in telegramdesktop/tdesktop):

- ``result.json`` at the export's root. A single-chat export is one object ``{"name", "type",
  "id", "messages": [...]}`` (``name`` is left out for Saved Messages). A full-account export is
  ``{"about", "personal_information", ..., "chats": {"about", "list": [chat, ...]},
  "left_chats": {"about", "list": [...]}}`` with the same chat objects in the lists.
- A message: ``id``, ``type`` (``"message"`` or ``"service"``), ``date`` (local time,
  ``Qt::ISODate``: ``"2023-01-31T12:34:56"``), ``date_unixtime`` (a string), ``from`` (a name or
  null), ``from_id`` (``"user123"``, ``"channel123"``, ``"chat123"``), ``forwarded_from``, and
  ``text``: a string, or a list of strings and entity objects ``{"type", "text", ...}``;
  ``text_entities`` always holds the objects. Service messages have ``actor``/``actor_id`` and
  ``action``; ``edit_group_photo`` and ``suggest_profile_photo`` carry a ``photo``.
- Media are paths relative to the export's root, always with "/": ``photo`` (``photos/photo_1@
  31-01-2023_12-34-56.jpg``, with ``width``/``height``); a document has ``file`` (in
  ``files/``, ``video_files/``, ``animations/``, ``stickers/``, ``voice_messages/``,
  ``round_video_messages/``), ``thumbnail`` (the file's path plus ``_thumb.jpg``),
  ``media_type`` (``sticker``, ``video_message``, ``voice_message``, ``animation``,
  ``video_file``, ``audio_file``; absent for a plain file) and ``mime_type``. In a full export
  the folders sit under ``chats/chat_NNN/``.
- A medium that was not downloaded is a placeholder string in place of its path:
  ``"(File not included. Change data exporting settings to download.)"``,
  ``"(File exceeds maximum size. Change data exporting settings to download.)"`` or
  ``"(File unavailable, please try again later)"`` (``PLACEHOLDERS``).

What is scanned: photos, files whose ``mime_type`` is an image, and videos, animations and round
video messages themselves (``media`` in the context is their ``media_type``; one that was not
downloaded is counted as not included, and its thumbnail scanned in its place when the export
holds it). Not scanned: stickers,
the thumbnail of a file that is itself an image (the image is scanned), and files no message
refers to (profile pictures, the HTML variant's own thumbnails and icons).

Hostile input: a path that is absolute, has a ``..`` part, or resolves (through links) outside
the export's root is refused and reported, never opened. ``result.json`` is streamed with ijson,
so memory stays bounded by one message, not the file; malformed or truncated JSON ends the
export with one error naming the exact byte, line and column, and what was found before it
stands. The HTML variant (``messages.html``, ``messages2.html``...) is read by
``telegram_html``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import ijson

from counterfake.sources.telegram_export import (
    LEAVES,
    ExportEntry,
    ExportFolder,
    ExportSummary,
    message_context,
    plain_text,
)
from counterfake.sources.telegram_html import iter_html_export

__all__ = [
    "PLACEHOLDERS",
    "ExportEntry",
    "ExportSummary",
    "is_telegram_export",
    "iter_export",
    "plain_text",
]

RESULT_JSON = "result.json"
HTML_PAGE = "messages.html"
HTML_ACCOUNT = "export_results.html"
PLACEHOLDERS: dict[str, str] = {
    "(File not included. Change data exporting settings to download.)": "not_included",
    "(File exceeds maximum size. Change data exporting settings to download.)": "too_large",
    "(File unavailable, please try again later)": "unavailable",
}
"""The strings Telegram Desktop writes in place of a medium it did not download, and why."""

VIDEO_MEDIA = frozenset({"video_file", "animation", "video_message"})
_CHAT_PREFIXES = ("", "chats.list.item", "left_chats.list.item")
_MESSAGE_ITEMS = frozenset(f"{p}.messages.item".lstrip(".") for p in _CHAT_PREFIXES)
_MESSAGE_ARRAYS = frozenset(f"{p}.messages".lstrip(".") for p in _CHAT_PREFIXES)
_CHAT_FIELDS = {
    f"{p}.{key}".lstrip("."): key for p in _CHAT_PREFIXES for key in ("name", "type", "id")
}
_CHUNK = 1 << 16


def is_telegram_export(path: str | os.PathLike) -> bool:
    """A folder holding ``result.json`` (JSON export), ``messages.html`` (HTML export of one
    chat) or ``export_results.html`` (HTML export of a whole account)."""
    folder = Path(path)
    try:
        return folder.is_dir() and any(
            (folder / name).is_file() for name in (RESULT_JSON, HTML_PAGE, HTML_ACCOUNT)
        )
    except (OSError, ValueError):
        return False


def iter_export(
    root: str | os.PathLike, summary: ExportSummary | None = None
) -> Iterator[ExportEntry]:
    """Every image of the export at ``root`` with its context, and every problem, in file order.

    ``summary``, when given, is updated as entries are yielded. JSON wins when an export has
    both formats (Telegram's "HTML and JSON" option writes both).
    """
    root_path = Path(root)
    if summary is None:
        summary = ExportSummary(str(root_path))
    if (root_path / RESULT_JSON).is_file():
        summary.format = "json"
        yield from _JsonExport(root_path, summary).entries()
    else:
        summary.format = "html"
        yield from iter_html_export(root_path, summary)


# ---- JSON ----------------------------------------------------------------------------------


class _JsonExport:
    def __init__(self, root: Path, summary: ExportSummary) -> None:
        self.folder = ExportFolder(root, summary)
        self.summary = summary
        self.file = root / RESULT_JSON

    def entries(self) -> Iterator[ExportEntry]:
        if not self.folder.holds(self.file):
            yield self._broken(f"{self.file}: refused, {LEAVES}")
            return
        try:
            with open(self.file, "rb") as stream:
                yield from self._parse(stream)
        except ijson.JSONError as error:
            yield self._broken(_json_problem(self.file, error))
        except OSError as error:
            yield self._broken(f"{self.file}: cannot read: {error.strerror or error}")
        else:
            if not self.summary.chats and not self.summary.messages:
                yield self._broken(f"{self.file}: not a Telegram export (no chats, no messages)")

    def _broken(self, problem: str) -> ExportEntry:
        self.summary.error = problem
        return ExportEntry(str(self.file), None, error=problem)

    def _parse(self, stream: IO[bytes]) -> Iterator[ExportEntry]:
        """Walk the event stream; build one message object at a time, never the whole file.

        Telegram writes a chat's ``name``, ``type`` and ``id`` before its ``messages``, so the
        chat is known by the time its messages arrive.
        """
        chat: dict[str, Any] = {}
        builder: ijson.ObjectBuilder | None = None
        building = ""
        for prefix, event, value in ijson.parse(stream, buf_size=_CHUNK):
            if builder is not None:
                builder.event(event, value)
                if prefix == building and event == "end_map":
                    self.summary.messages += 1
                    yield from self._message(builder.value, chat)
                    builder = None
            elif prefix in _MESSAGE_ITEMS and event == "start_map":
                builder, building = ijson.ObjectBuilder(), prefix
                builder.event(event, value)
            elif prefix in _CHAT_PREFIXES and prefix and event == "start_map":
                chat = {}
            elif prefix in _CHAT_FIELDS and event in ("string", "number"):
                chat[_CHAT_FIELDS[prefix]] = value
            elif prefix in _MESSAGE_ARRAYS and event == "start_array":
                self.summary.chats += 1

    def _message(self, message: dict[str, Any], chat: dict[str, Any]) -> Iterator[ExportEntry]:
        for medium, written in _media(message):
            if not isinstance(written, str):
                continue
            if _is_placeholder(written):
                self.summary.count_not_included(chat, PLACEHOLDERS.get(written, "not_included"))
                continue
            yield self.folder.entry(written, message_context(chat, message, medium))


def _media(message: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(kind, path) of each image a message carries, as described in the module's docstring."""
    if "photo" in message:
        yield "photo", message["photo"]
    if "file" not in message:
        return
    media_type = message.get("media_type")
    mime = message.get("mime_type")
    if media_type is None and isinstance(mime, str) and mime.lower().startswith("image/"):
        yield "file", message["file"]
    elif media_type in VIDEO_MEDIA:
        written = message["file"]
        yield media_type, written
        thumbnail = message.get("thumbnail")
        if (
            _is_placeholder(written)
            and isinstance(thumbnail, str)
            and not _is_placeholder(thumbnail)
        ):
            yield "thumbnail", thumbnail


def _is_placeholder(written: object) -> bool:
    return isinstance(written, str) and (written in PLACEHOLDERS or written.startswith("(File "))


# ---- errors with a position ----------------------------------------------------------------


def _json_problem(path: Path, error: Exception) -> str:
    """One line: what is wrong with the JSON, and exactly where (byte, line, column)."""
    message = error.args[0] if error.args else ""
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    # yajl appends the offending text and a "(right here) ---^" line: keep the first line only.
    detail = str(message).strip().splitlines()[0] if str(message).strip() else "invalid JSON"
    offset, at_end = _error_offset(path)
    line, column = _line_and_column(path, offset)
    where = f"byte {offset} (line {line}, column {column})"
    if at_end:
        return f"{path}: truncated JSON: the file ends at {where} inside an unfinished value"
    return f"{path}: malformed JSON at {where}: {detail}"


def _error_offset(path: Path) -> tuple[int, bool]:
    """The offset of the first byte the parser refuses, and whether it is the end of the file.

    ijson's fast parser says what is wrong but not where. Only when a file is broken, it is
    parsed again: in large chunks up to the one that fails, then that chunk byte by byte.
    """
    failing_chunk = _failing_chunk(path)
    if failing_chunk is None:
        return path.stat().st_size, True
    parser = ijson.basic_parse_coro(_discard())
    with open(path, "rb") as stream:
        for _ in range(failing_chunk):
            parser.send(stream.read(_CHUNK))
        start = failing_chunk * _CHUNK
        chunk = stream.read(_CHUNK)
    for index in range(len(chunk)):
        try:
            parser.send(chunk[index : index + 1])
        except ijson.JSONError:
            return start + index, False
    return start + len(chunk), True


def _failing_chunk(path: Path) -> int | None:
    """The index of the chunk whose bytes the parser refuses; None if only the end is missing."""
    parser = ijson.basic_parse_coro(_discard())
    with open(path, "rb") as stream:
        index = 0
        while chunk := stream.read(_CHUNK):
            try:
                parser.send(chunk)
            except ijson.JSONError:
                return index
            index += 1
    return None


@ijson.utils.coroutine
def _discard() -> Iterator[None]:
    while True:
        yield


def _line_and_column(path: Path, offset: int) -> tuple[int, int]:
    """1-based line and column (in bytes) of ``offset``, counted without reading it all at once."""
    line, line_start, done = 1, 0, 0
    with open(path, "rb") as stream:
        while done < offset:
            chunk = stream.read(min(_CHUNK, offset - done))
            if not chunk:
                break
            newlines = chunk.count(b"\n")
            if newlines:
                line += newlines
                line_start = done + chunk.rindex(b"\n") + 1
            done += len(chunk)
    return line, offset - line_start + 1
