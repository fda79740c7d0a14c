"""The HTML variant of a Telegram Desktop export: the same images and context as the JSON one.

Telegram Desktop writes the chat as pages of at most 1,000 messages: ``messages.html``,
``messages2.html``... at the root of a single-chat export, under ``chats/chat_NNN/`` in a
full-account export (whose root holds ``export_results.html``). What is read, as Telegram
writes it (``export_output_html.cpp`` in telegramdesktop/tdesktop):

- the chat's name: ``<div class="page_header">`` ... ``<div class="text bold">Name</div>``;
  its type and id are not in the HTML, so they are null;
- a message: ``<div class="message default clearfix" id="message123">``; a "joined" message
  (same sender as the one before) has no ``from_name`` and inherits it;
- in its body: ``<div class="pull_right date details" title="05.01.2023 12:34:56 UTC+01:00">``,
  ``<div class="from_name">``, ``<div class="forwarded body">`` with the origin's own
  ``from_name``, ``<div class="text">``;
- media: ``<a class="photo_wrap" href="photos/...">`` (a photo; under ``files/`` an image sent
  as a file), ``<a class="video_file_wrap" href="video_files/...">`` or ``<a
  class="animated_wrap">`` (a video or animation: the file itself when it was exported, else
  the thumbnail ``<img>`` inside the link), ``<a class="media_file"
  href="files/x.png">`` when the file is an image; a medium not exported is a ``<div
  class="description">`` saying "Not included, change data exporting settings to download."
  (or "Exceeds maximum size..." / "Unavailable...").

Paths are relative to the page's folder and go through the same check as the JSON export's.
Pages are parsed with the standard library's ``html.parser``, one page at a time, fed in chunks.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from counterfake.imaging import IMAGE_SUFFIXES
from counterfake.sources.telegram_export import (
    LEAVES,
    ExportEntry,
    ExportFolder,
    ExportSummary,
    message_context,
)
from counterfake.video.decode import VIDEO_SUFFIXES

__all__ = ["html_pages", "iter_html_export"]

HTML_PLACEHOLDERS = {  # the same reasons as the JSON export's PLACEHOLDERS
    "Not included, change data exporting settings to download.": "not_included",
    "Exceeds maximum size, change data exporting settings to download.": "too_large",
    "Unavailable, please try again later.": "unavailable",
}
_THUMBNAIL_LINKS = frozenset({"video_file_wrap", "animated_wrap"})
_VIDEO_LINKS = {"video_file_wrap": "video_file", "animated_wrap": "animation"}
_CHUNK = 1 << 16


def html_pages(root: Path) -> list[Path]:
    """The message pages of an export, in reading order (``messages.html``, ``messages2.html``
    ... of the root, then of each ``chats/chat_NNN/`` folder of a full-account export)."""
    folders = [root]
    chats = root / "chats"
    if chats.is_dir() and not chats.is_symlink():
        folders += sorted(p for p in chats.iterdir() if p.is_dir() and not p.is_symlink())
    pages = []
    for folder in folders:
        numbered = []
        for page in folder.glob("messages*.html"):
            match = re.fullmatch(r"messages(\d*)\.html", page.name)
            if match and page.is_file():
                numbered.append((int(match.group(1) or 1), page))
        pages += [page for _, page in sorted(numbered)]
    return pages


def iter_html_export(root: Path, summary: ExportSummary) -> Iterator[ExportEntry]:
    """Every image of an HTML export, with its context; problems as one-line entries."""
    folder = ExportFolder(root, summary)
    pages = html_pages(root)
    if not pages:
        summary.error = f"{root}: no messages*.html pages; export the chat as JSON instead"
        yield ExportEntry(str(root), None, error=summary.error)
        return
    chat_folders: set[Path] = set()
    for page in pages:
        if page.parent not in chat_folders:
            chat_folders.add(page.parent)
            summary.chats += 1
        if not folder.holds(page):
            summary.refused += 1
            yield ExportEntry(str(page), None, error=f"{page}: refused, {LEAVES}")
            continue
        parser = _Page(page, folder, summary)
        try:
            with open(page, encoding="utf-8", errors="replace") as stream:
                while chunk := stream.read(_CHUNK):
                    parser.feed(chunk)
                    yield from parser.take()
            parser.close()
        except OSError as error:
            problem = f"{page}: cannot read: {error.strerror or error}"
            summary.error = problem
            yield ExportEntry(str(page), None, error=problem)
        yield from parser.take()


class _Page(HTMLParser):
    """One page's messages, read as a stream of tags; entries are collected for ``take``."""

    def __init__(self, page: Path, folder: ExportFolder, summary: ExportSummary) -> None:
        super().__init__(convert_charrefs=True)
        self.page, self.folder, self.summary = page, folder, summary
        self.chat: dict[str, Any] = {"name": None, "type": None, "id": None}
        self.stack: list[tuple[str, set[str]]] = []  # open div/a/span tags and their classes
        self.message: dict[str, Any] | None = None
        self.media: list[tuple[str, str]] = []
        self.capture: tuple[str, int] | None = None  # (field, stack depth) whose text is read
        self.captured: list[str] = []
        self.last_from: Any = None
        self.entries: list[ExportEntry] = []

    def take(self) -> list[ExportEntry]:
        entries, self.entries = self.entries, []
        return entries

    # -- structure ------------------------------------------------------------------------

    def _inside(self, name: str) -> bool:
        return any(name in classes for _, classes in self.stack)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {key: value or "" for key, value in attrs}
        classes = set(values.get("class", "").split())
        if tag == "img":
            self._image(values)
            return
        if tag not in ("div", "a", "span"):
            return
        if tag == "div" and "message" in classes and "default" in classes:
            self._finish_message()
            match = re.fullmatch(r"message(\d+)", values.get("id", ""))
            self.message = {"id": int(match.group(1)) if match else None}
            self.media = []
        self.stack.append((tag, classes))
        self._start(tag, classes, values)

    def _start(self, tag: str, classes: set[str], values: dict[str, str]) -> None:
        depth = len(self.stack)
        if self.capture is not None:
            return
        if "text" in classes and self._inside("page_header") and self.chat["name"] is None:
            self.capture = ("chat", depth)
        message = self.message
        if message is None:
            return
        forwarded = self._inside("forwarded")
        if "date" in classes and "details" in classes and "title" in values:
            if not forwarded:
                message.setdefault("date", values["title"])
        elif "from_name" in classes:
            self.capture = ("forwarded_from" if forwarded else "from", depth)
        elif tag == "div" and "text" in classes and "text" not in message:
            self.capture = ("text", depth)
        elif tag == "div" and "description" in classes:
            self.capture = ("description", depth)
        elif tag == "a" and "photo_wrap" in classes and values.get("href"):
            href = values["href"]
            self.media.append(("file" if href.startswith("files/") else "photo", href))
        elif tag == "a" and "media_file" in classes and _is_image_name(values.get("href", "")):
            self.media.append(("file", values["href"]))
        elif tag == "a" and classes & _THUMBNAIL_LINKS and _is_video_name(values.get("href", "")):
            kind = next(_VIDEO_LINKS[name] for name in _VIDEO_LINKS if name in classes)
            self.media.append((kind, values["href"]))

    def _image(self, values: dict[str, str]) -> None:
        link = next((classes for tag, classes in reversed(self.stack) if tag == "a"), set())
        if self.message is None or not link & _THUMBNAIL_LINKS or not values.get("src"):
            return
        if self.media and self.media[-1][0] in _VIDEO_LINKS.values():
            return  # the video itself is scanned, not its thumbnail
        self.media.append(("thumbnail", values["src"]))

    def handle_data(self, data: str) -> None:
        if self.capture is not None:
            self.captured.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag not in ("div", "a", "span") or not self.stack:
            return
        while self.stack:
            open_tag, _ = self.stack.pop()
            if self.capture is not None and len(self.stack) < self.capture[1]:
                self._end_capture()
            if open_tag == tag:
                break
        if self.message is not None and not self._inside("message"):
            self._finish_message()

    def _end_capture(self) -> None:
        assert self.capture is not None
        name = self.capture[0]
        text = " ".join("".join(self.captured).split())
        self.capture, self.captured = None, []
        if name == "chat":
            self.chat["name"] = text or None
        elif self.message is None:
            return
        elif name == "description":
            if text in HTML_PLACEHOLDERS:
                self.summary.count_not_included(self.chat, HTML_PLACEHOLDERS[text])
        elif name == "forwarded_from":
            # The origin's name is followed by the original date, in its own span.
            self.message.setdefault("forwarded_from", re.sub(r"\s*\d\d\.\d\d\.\d{4}.*$", "", text))
        else:
            self.message.setdefault(name, text or None)

    def close(self) -> None:
        super().close()
        self._finish_message()

    # -- messages -------------------------------------------------------------------------

    def _finish_message(self) -> None:
        message, self.message = self.message, None
        if message is None:
            return
        self.summary.messages += 1
        if "from" in message:
            self.last_from = message["from"]
        else:
            message["from"] = self.last_from  # a "joined" message: same sender as before
        message["date_unixtime"] = _unixtime(message.get("date"))
        for medium, href in self.media:
            context = message_context(self.chat, message, medium)
            self.entries.append(self.folder.entry(href, context, base=self.page.parent))
        self.media = []


def _is_image_name(href: str) -> bool:
    return Path(href).suffix.lower() in IMAGE_SUFFIXES


def _is_video_name(href: str) -> bool:
    return Path(href).suffix.lower() in VIDEO_SUFFIXES | {".gif"}


def _unixtime(title: Any) -> str | None:
    """``"05.01.2023 12:34:56 UTC+01:00"`` as seconds since 1970 (a string, as in JSON);
    None when the title carries no offset (older exports), since local time is ambiguous."""
    if not isinstance(title, str):
        return None
    match = re.fullmatch(r"(\d\d\.\d\d\.\d{4} \d\d:\d\d:\d\d) UTC([+-]\d\d):?(\d\d)", title)
    if match is None:
        return None
    stamp = datetime.strptime(
        f"{match.group(1)} {match.group(2)}{match.group(3)}", "%d.%m.%Y %H:%M:%S %z"
    )
    return str(int(stamp.timestamp()))
