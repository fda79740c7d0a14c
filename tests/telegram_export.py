"""Builds Telegram Desktop exports for tests, in the exact format Telegram Desktop writes.

Field names, nesting, file names and placeholder strings follow ``export_output_json.cpp`` and
``export_output_html.cpp`` (telegramdesktop/tdesktop). Images are small resized copies of the
shared test photos, written under the test's tmp_path only.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any

import cv2
from conftest import SHARED_DATA

NOT_INCLUDED = "(File not included. Change data exporting settings to download.)"
TOO_LARGE = "(File exceeds maximum size. Change data exporting settings to download.)"
START = datetime(2023, 1, 5, 12, 34, 56, tzinfo=UTC)


def people_photo(number: int, width: int = 320):
    """A shared people photo (RGB) and its clothing mask, resized to ``width``."""
    bgr = cv2.imread(str(SHARED_DATA / "people" / f"{number:04d}.jpg"))
    mask = cv2.imread(str(SHARED_DATA / "people" / f"{number:04d}_mask.png"), 0)
    height = round(bgr.shape[0] * width / bgr.shape[1])
    bgr = cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA)
    mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST)
    return bgr[:, :, ::-1].copy(), mask > 127


def write_image(path: Path, rgb) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), rgb[:, :, ::-1])
    return path


def when(message_id: int) -> datetime:
    return START + timedelta(minutes=message_id)


def photo_name(message_id: int) -> str:
    """``photo_1@05-01-2023_12-35-56.jpg``: how Telegram Desktop names an exported photo."""
    return f"photo_{message_id}@{when(message_id):%d-%m-%Y_%H-%M-%S}.jpg"


def message(message_id: int, *, sender: str = "Alice", sender_id: str = "user123456", **fields):
    """A ``"type": "message"`` object with the keys in Telegram's order; ``fields`` add media,
    ``forwarded_from``, ``text`` (a string or a list of strings and entities)."""
    text = fields.pop("text", "")
    entities = [
        part if isinstance(part, dict) else {"type": "plain", "text": part}
        for part in (text if isinstance(text, list) else [text] if text else [])
    ]
    forwarded = fields.pop("forwarded_from", None)
    return {
        "id": message_id,
        "type": "message",
        "date": when(message_id).strftime("%Y-%m-%dT%H:%M:%S"),
        "date_unixtime": str(int(when(message_id).timestamp())),
        "from": sender,
        "from_id": sender_id,
        **({"forwarded_from": forwarded} if forwarded else {}),
        **fields,
        "text": text,
        "text_entities": entities,
    }


def photo(message_id: int, path: str, width: int = 320, height: int = 480, **fields):
    return message(message_id, photo=path, width=width, height=height, **fields)


def document(message_id: int, path: str, mime: str, media_type: str | None = None, **fields):
    """A file, video, animation, round video or sticker: ``file``, ``thumbnail``, types."""
    extra: dict[str, Any] = {"file": path, "file_name": Path(path).name}
    if not path.startswith("(File"):
        extra["thumbnail"] = f"{path}_thumb.jpg"
    if media_type:
        extra["media_type"] = media_type
    extra["mime_type"] = mime
    return message(message_id, **extra, **fields)


def service(message_id: int, action: str = "pin_message"):
    return {
        "id": message_id,
        "type": "service",
        "date": when(message_id).strftime("%Y-%m-%dT%H:%M:%S"),
        "date_unixtime": str(int(when(message_id).timestamp())),
        "actor": "Alice",
        "actor_id": "user123456",
        "action": action,
        "text": "",
        "text_entities": [],
    }


def chat(name: str, kind: str, chat_id: int, messages: list[dict]) -> dict:
    return {"name": name, "type": kind, "id": chat_id, "messages": messages}


def write_single_chat(root: Path, chat_object: dict) -> Path:
    """A single-chat export: ``result.json`` is the chat object itself."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "result.json").write_text(json.dumps(chat_object, indent=1, ensure_ascii=False))
    return root / "result.json"


def write_account(root: Path, chats: list[dict], left: list[dict]) -> Path:
    """A full-account export: personal data first, then ``chats`` and ``left_chats`` lists."""
    root.mkdir(parents=True, exist_ok=True)
    document = {
        "about": "Here is the data you requested. Remember: Telegram is ad free, ...",
        "personal_information": {
            "user_id": 123456,
            "first_name": "Alice",
            "last_name": "",
            "phone_number": "+42 000 000 0000",
            "username": "@alice",
            "bio": "",
        },
        "profile_pictures": [
            {"date": "2022-12-01T10:00:00", "date_unixtime": "1669888800", "photo": "profile.jpg"}
        ],
        "contacts": {"about": "This is the list of contacts...", "list": []},
        "chats": {"about": "This page lists all chats from this export.", "list": chats},
        "left_chats": {"about": "This page lists all supergroups and channels...", "list": left},
    }
    (root / "result.json").write_text(json.dumps(document, indent=1, ensure_ascii=False))
    return root / "result.json"


# ---- HTML ----------------------------------------------------------------------------------


def html_message(
    message_id: int,
    *,
    sender: str | None = "Alice",
    media: str = "",
    text: str = "",
    forwarded_from: str | None = None,
) -> str:
    """One ``message default`` block; ``sender=None`` makes a "joined" message."""
    stamp = when(message_id)
    title = f"{stamp:%d.%m.%Y %H:%M:%S} UTC+00:00"
    body = f'<div class="from_name">\n{escape(sender)}\n   </div>\n' if sender else ""
    inner = media + (f'<div class="text">\n{text}\n   </div>\n' if text else "")
    if forwarded_from:
        inner = (
            f'<div class="forwarded body">\n<div class="from_name">\n{escape(forwarded_from)}'
            f'<span class="date details" title="{title}"> {stamp:%d.%m.%Y %H:%M:%S}</span>\n'
            f"</div>\n{inner}</div>\n"
        )
    joined = "" if sender else " joined"
    userpic = (
        '<div class="pull_left userpic_wrap">\n<div class="userpic userpic2" '
        'style="width: 42px; height: 42px">\n<div class="initials" '
        'style="line-height: 42px">\nA\n</div>\n</div>\n</div>\n'
        if sender
        else ""
    )
    return (
        f'<div class="message default clearfix{joined}" id="message{message_id}">\n{userpic}'
        f'<div class="body">\n<div class="pull_right date details" title="{title}">\n'
        f"{stamp:%H:%M}\n</div>\n{body}{inner}</div>\n</div>\n"
    )


def html_photo(href: str) -> str:
    return (
        f'<div class="media_wrap clearfix">\n<a class="photo_wrap clearfix pull_left" '
        f'href="{escape(href)}">\n<img class="photo" src="{escape(href[:-4])}_thumb.jpg" '
        f'style="width: 260px; height: 390px"/>\n</a>\n</div>\n'
    )


def html_video(href: str) -> str:
    return (
        f'<div class="media_wrap clearfix">\n<a class="video_file_wrap clearfix pull_left" '
        f'href="{escape(href)}">\n<div class="video_play_bg">\n<div class="video_play">\n</div>\n'
        f'</div>\n<div class="video_duration">\n00:05\n</div>\n<img class="video_file" '
        f'src="{escape(href)}_thumb.jpg" style="width: 260px; height: 146px"/>\n</a>\n</div>\n'
    )


def html_not_included(title: str = "Photo") -> str:
    return (
        '<div class="media_wrap clearfix">\n<div class="media clearfix pull_left media_photo">\n'
        '<div class="fill pull_left">\n</div>\n<div class="body">\n'
        f'<div class="title bold">\n{title}\n</div>\n<div class="description">\n'
        "Not included, change data exporting settings to download.\n</div>\n"
        '<div class="status details">\n320x480\n</div>\n</div>\n</div>\n</div>\n'
    )


def html_page(chat_name: str, messages: list[str]) -> str:
    return (
        '<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8"/>\n'
        f"<title>Exported Data</title>\n"
        '<meta content="width=device-width, initial-scale=1.0" name="viewport"/>\n'
        '<link href="css/style.css" rel="stylesheet"/>\n<script src="js/script.js" '
        'type="text/javascript">\n</script>\n</head>\n<body onload="CheckLocation();">\n'
        '<div class="page_wrap">\n<div class="page_header">\n<div class="content">\n'
        f'<div class="text bold">\n{escape(chat_name)}\n</div>\n</div>\n</div>\n'
        '<div class="page_body chat_page">\n<div class="history">\n'
        '<div class="message service" id="message-1">\n<div class="body details">\n'
        "5 January 2023\n</div>\n</div>\n" + "".join(messages) + "</div>\n</div>\n</div>\n"
        "</body>\n</html>\n"
    )
