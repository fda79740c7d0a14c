"""Telegram Desktop exports: every image with its context; hostile and broken exports refused
with one line each; large exports streamed."""

from __future__ import annotations

import json
import os
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA
from telegram_export import (
    NOT_INCLUDED,
    TOO_LARGE,
    chat,
    document,
    html_message,
    html_not_included,
    html_page,
    html_photo,
    html_video,
    message,
    people_photo,
    photo,
    photo_name,
    service,
    when,
    write_account,
    write_image,
    write_single_chat,
)

from counterfake.cli import main
from counterfake.sources.telegram import ExportSummary, is_telegram_export, iter_export

pytestmark = pytest.mark.skipif(
    not (SHARED_DATA / "people").is_dir(), reason="needs the shared data (COUNTERFAKE_SHARED_DATA)"
)


def read(root: Path) -> tuple[list, ExportSummary]:
    summary = ExportSummary(str(root))
    return list(iter_export(root, summary)), summary


@pytest.fixture(scope="module")
def people():
    return [people_photo(number)[0] for number in (1, 2, 3)]


def test_single_chat_export_yields_every_image_with_its_context(tmp_path, people):
    root = tmp_path / "ChatExport_2023-01-06"
    write_image(root / "photos" / photo_name(1), people[0])
    write_image(root / "files" / "beach.png", people[1])
    for video in ("video_files/clip.mp4", "animations/loop.mp4", "round_video_messages/r.mp4"):
        (root / video).parent.mkdir(parents=True, exist_ok=True)
        (root / video).write_bytes(b"a video")  # listed, not decoded, here
        write_image(root / f"{video}_thumb.jpg", people[2])
    write_image(root / "stickers" / "sticker.webp_thumb.jpg", people[2])
    (root / "files" / "report.pdf").write_bytes(b"%PDF-1.4")
    write_single_chat(
        root,
        chat(
            "Leaks",
            "public_channel",
            1712345678,
            [
                service(1000),
                photo(
                    1,
                    f"photos/{photo_name(1)}",
                    sender="Leaks",
                    sender_id="channel1712345678",
                    forwarded_from="Other Channel",
                    text=["look at ", {"type": "bold", "text": "her"}, " now"],
                ),
                document(2, "files/beach.png", "image/png"),
                document(3, "files/report.pdf", "application/pdf"),
                document(4, "video_files/clip.mp4", "video/mp4", "video_file", text="clip"),
                document(5, "animations/loop.mp4", "video/mp4", "animation"),
                document(6, "round_video_messages/r.mp4", "video/mp4", "video_message"),
                document(7, "stickers/sticker.webp", "image/webp", "sticker"),
                message(8, text="no media here"),
            ],
        ),
    )
    entries, summary = read(root)

    assert [(Path(e.path).relative_to(root).as_posix(), e.context["media"]) for e in entries] == [
        (f"photos/{photo_name(1)}", "photo"),
        ("files/beach.png", "file"),
        ("video_files/clip.mp4", "video_file"),
        ("animations/loop.mp4", "animation"),
        ("round_video_messages/r.mp4", "video_message"),
    ]
    assert all(e.error is None and Path(e.source).is_file() for e in entries)
    assert entries[0].context == {
        "source": "telegram",
        "chat": {"name": "Leaks", "type": "public_channel", "id": 1712345678},
        "message_id": 1,
        "date": when(1).strftime("%Y-%m-%dT%H:%M:%S"),
        "date_unixtime": str(int(when(1).timestamp())),
        "from": "Leaks",
        "from_id": "channel1712345678",
        "forwarded_from": "Other Channel",
        "text": "look at her now",
        "media": "photo",
    }
    assert entries[2].context["text"] == "clip" and entries[1].context["forwarded_from"] is None
    assert summary.to_json() == {
        "path": str(root),
        "format": "json",
        "chats": 1,
        "messages": 9,
        "images": 5,
        "not_included": 0,
        "not_included_by_reason": {},
        "not_included_by_chat": [],
        "refused_paths": 0,
        "error": None,
    }


def test_full_account_export_reads_chats_and_left_chats(tmp_path, people):
    root = tmp_path / "DataExport_2023-01-06"
    for index, folder in enumerate(("chats/chat_001", "chats/chat_002", "chats/chat_003")):
        write_image(root / folder / "photos" / photo_name(index + 1), people[index])
    write_image(root / "profile.jpg", people[0])
    write_account(
        root,
        chats=[
            chat("Bob", "personal_chat", 42, [photo(1, f"chats/chat_001/photos/{photo_name(1)}")]),
            chat(
                "Group",
                "private_supergroup",
                1500000001,
                [message(5, text="hi"), photo(2, f"chats/chat_002/photos/{photo_name(2)}")],
            ),
        ],
        left=[
            chat(
                "Old",
                "private_channel",
                1600000002,
                [photo(3, f"chats/chat_003/photos/{photo_name(3)}")],
            )
        ],
    )
    entries, summary = read(root)

    assert [
        (e.context["chat"]["name"], e.context["chat"]["id"], e.context["message_id"])
        for e in entries
    ] == [
        ("Bob", 42, 1),
        ("Group", 1500000001, 2),
        ("Old", 1600000002, 3),
    ]
    assert entries[2].context["chat"]["type"] == "private_channel"
    assert (summary.chats, summary.messages, summary.images) == (3, 4, 3)
    assert all(Path(e.source).is_file() for e in entries)  # profile pictures are not messages


def test_media_not_included_are_counted_per_chat_and_never_opened(tmp_path, people):
    root = tmp_path / "export"
    write_image(root / "photos" / photo_name(3), people[0])
    write_account(
        root,
        chats=[
            chat(
                "A",
                "personal_chat",
                1,
                [photo(1, NOT_INCLUDED), photo(3, f"photos/{photo_name(3)}")],
            ),
            chat("B", "private_group", 2, [document(2, TOO_LARGE, "video/mp4", "video_file")]),
        ],
        left=[],
    )
    # A video that was not downloaded has a placeholder thumbnail too.
    data = json.loads((root / "result.json").read_text())
    data["chats"]["list"][1]["messages"][0]["thumbnail"] = TOO_LARGE
    (root / "result.json").write_text(json.dumps(data))

    entries, summary = read(root)

    assert [e.context["message_id"] for e in entries] == [3]
    report = summary.to_json()
    assert report["not_included"] == 2
    assert report["not_included_by_reason"] == {"not_included": 1, "too_large": 1}
    assert report["not_included_by_chat"] == [
        {"chat": {"name": "A", "type": "personal_chat", "id": 1}, "not_included": 1},
        {"chat": {"name": "B", "type": "private_group", "id": 2}, "not_included": 1},
    ]


def test_paths_leaving_the_export_are_refused_with_the_path_and_the_reason(tmp_path, people):
    outside = write_image(tmp_path / "outside" / "secret.jpg", people[0])
    root = tmp_path / "export"
    write_image(root / "photos" / "inside.jpg", people[1])
    (root / "photos").mkdir(exist_ok=True)
    os.symlink(outside, root / "photos" / "link_out.jpg")
    os.symlink(tmp_path / "outside", root / "photos" / "folder_out")
    os.symlink(root / "photos" / "inside.jpg", root / "photos" / "link_in.jpg")
    write_single_chat(
        root,
        chat(
            "Hostile",
            "private_channel",
            7,
            [
                photo(1, "../outside/secret.jpg"),
                photo(2, str(outside)),
                photo(3, "photos/link_out.jpg"),
                photo(4, "photos/folder_out/secret.jpg"),
                photo(5, "photos/../../outside/secret.jpg"),
                photo(6, "photos/link_in.jpg"),
                photo(7, "photos/inside.jpg"),
            ],
        ),
    )
    entries, summary = read(root)

    refused = {e.context["message_id"]: e.error for e in entries if e.error}
    assert sorted(refused) == [1, 2, 3, 4, 5] and summary.refused == 5
    assert "absolute path" in refused[2] and str(outside) in refused[2]
    assert "path with '..'" in refused[1] and "../outside/secret.jpg" in refused[1]
    assert "leaves the export folder" in refused[3] and "link_out.jpg" in refused[3]
    assert "leaves the export folder" in refused[4]
    assert all("\n" not in error and "message" in error for error in refused.values())
    allowed = [e for e in entries if not e.error]
    assert [e.context["message_id"] for e in allowed] == [6, 7]
    assert all(Path(e.source).resolve().is_relative_to(root.resolve()) for e in allowed)


def test_truncated_result_json_keeps_what_came_before_and_names_the_position(tmp_path, people):
    root = tmp_path / "export"
    write_image(root / "photos" / photo_name(1), people[0])
    result = write_single_chat(
        root,
        chat(
            "C", "personal_chat", 1, [photo(1, f"photos/{photo_name(1)}"), photo(2, "photos/x.jpg")]
        ),
    )
    data = result.read_bytes()
    cut = data.index(b'"id": 2') + 3
    result.write_bytes(data[:cut])

    entries, summary = read(root)

    assert [e.context["message_id"] for e in entries[:-1]] == [1]
    line = data[:cut].count(b"\n") + 1
    column = cut - data[:cut].rindex(b"\n")
    assert entries[-1].error == (
        f"{result}: truncated JSON: the file ends at byte {cut} (line {line}, column {column}) "
        "inside an unfinished value"
    )
    assert summary.error == entries[-1].error


def test_malformed_result_json_names_byte_line_and_column(tmp_path):
    root = tmp_path / "export"
    root.mkdir()
    (root / "result.json").write_text('{\n "name": "C",\n "messages": [\n  {"id": 1,, }\n ]\n}\n')

    (entry,) = read(root)[0]

    assert entry.error.startswith(
        f"{root / 'result.json'}: malformed JSON at byte 42 (line 4, column 12): "
    )
    assert "\n" not in entry.error


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"\xff\xfe\x00garbage\x00\x01", "malformed JSON at byte 0 (line 1, column 1)"),
        (b'{"name": "caf\xe9", "messages": []}', "malformed JSON at byte 14 (line 1, column 15)"),
        (b"", "truncated JSON: the file ends at byte 0"),
        (b'[1, 2, {"a": "b"}]', "not a Telegram export"),
        (b'{"name": "x", "messages": 5}', "not a Telegram export"),
    ],
)
def test_garbage_result_json_gets_one_clear_line(tmp_path, content, problem):
    root = tmp_path / "export"
    root.mkdir()
    (root / "result.json").write_bytes(content)

    entries, summary = read(root)

    assert len(entries) == 1 and entries[0].source is None
    assert problem in entries[0].error and str(root / "result.json") in entries[0].error
    assert "\n" not in entries[0].error and summary.error == entries[0].error


def test_large_export_is_streamed_in_bounded_memory(tmp_path):
    """20,000 messages (about 14 MB): parsing keeps one message in memory, not the file."""
    root = tmp_path / "big"
    root.mkdir()
    with open(root / "result.json", "w") as stream:
        stream.write('{\n "name": "Big",\n "type": "public_channel",\n "id": 1,\n "messages": [\n')
        for number in range(1, 20001):
            item = photo(number, f"photos/{photo_name(number)}", text="x" * 200)
            stream.write(("," if number > 1 else "") + json.dumps(item, indent=1) + "\n")
        stream.write(" ]\n}\n")
    size = (root / "result.json").stat().st_size

    tracemalloc.start()
    count = 0
    summary = ExportSummary(str(root))
    for entry in iter_export(root, summary):
        count += 1
        assert entry.error is None
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    assert count == summary.images == summary.messages == 20000
    assert size > 10_000_000 and peak < 1_500_000, (size, peak)


def test_folders_are_recognised_as_exports_by_their_root_file(tmp_path):
    (tmp_path / "json").mkdir()
    (tmp_path / "json" / "result.json").write_text("{}")
    (tmp_path / "html").mkdir()
    (tmp_path / "html" / "messages.html").write_text("")
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "photo.jpg").write_bytes(b"")
    assert is_telegram_export(tmp_path / "json") and is_telegram_export(tmp_path / "html")
    assert not is_telegram_export(tmp_path / "plain")
    assert not is_telegram_export(tmp_path / "json" / "result.json")
    assert not is_telegram_export(tmp_path / "missing")


# ---- HTML ----------------------------------------------------------------------------------


def test_html_export_pages_give_the_same_context(tmp_path, people):
    root = tmp_path / "ChatExport_html"
    write_image(root / "photos" / photo_name(1), people[0])
    write_image(root / "photos" / photo_name(2), people[1])
    write_image(root / "video_files" / "clip.mp4_thumb.jpg", people[2])
    write_image(tmp_path / "outside.jpg", people[2])
    (root / "messages.html").write_text(
        html_page(
            "Leaks",
            [
                html_message(
                    1,
                    sender="Leaks",
                    media=html_photo(f"photos/{photo_name(1)}"),
                    text="look <strong>here</strong>",
                ),
                html_message(
                    2,
                    sender=None,
                    media=html_photo(f"photos/{photo_name(2)}"),
                    forwarded_from="Other Channel",
                ),
                html_message(3, media=html_not_included()),
            ],
        )
    )
    (root / "messages2.html").write_text(
        html_page(
            "Leaks",
            [
                html_message(4, sender="Bob", media=html_video("video_files/clip.mp4")),
                html_message(5, media=html_photo("../outside.jpg")),
                html_message(6, media=html_photo("/etc/passwd.jpg")),
            ],
        )
    )
    entries, summary = read(root)

    ok = [e for e in entries if not e.error]
    assert [(e.context["message_id"], e.context["media"]) for e in ok] == [
        (1, "photo"),
        (2, "photo"),
        (4, "video_file"),  # the video itself, not its thumbnail
    ]
    first = ok[0].context
    assert first["chat"] == {"name": "Leaks", "type": None, "id": None}
    assert first["date"] == f"{when(1):%d.%m.%Y %H:%M:%S} UTC+00:00"
    assert first["date_unixtime"] == str(int(when(1).timestamp()))
    assert (first["from"], first["text"], first["forwarded_from"]) == ("Leaks", "look here", None)
    assert ok[1].context["from"] == "Leaks"  # a joined message: same sender as the one before
    assert ok[1].context["forwarded_from"] == "Other Channel"
    assert ok[2].context["from"] == "Bob"
    assert Path(ok[2].source).name == "clip.mp4"
    refused = [e.error for e in entries if e.error]
    assert len(refused) == 2 and "leaves the export folder" in refused[0]
    assert "absolute path" in refused[1]
    assert summary.to_json()["not_included"] == 1
    assert (summary.format, summary.chats, summary.messages) == ("html", 1, 6)


def test_html_export_without_pages_says_to_export_as_json(tmp_path):
    root = tmp_path / "account"
    root.mkdir()
    (root / "export_results.html").write_text("<html></html>")

    (entry,) = read(root)[0]

    assert "export the chat as JSON" in entry.error and str(root) in entry.error


# ---- scanning an export, end to end --------------------------------------------------------


def test_scanning_an_export_finds_the_derivative_with_its_message(tmp_path, people, capsys):
    original, garment = people_photo(4)
    registered = write_image(tmp_path / "mine" / "me.jpg", original)
    db = str(tmp_path / "r.db")
    assert main(["register", str(registered), "--subject", "alice", "--db", db]) == 0

    edited = original.copy()
    texture = np.random.default_rng(4).integers(60, 200, edited.shape, dtype=np.uint8)
    edited[garment] = texture[garment]  # a harmless pasted texture over the clothing
    root = tmp_path / "export"
    write_image(root / "photos" / photo_name(2), edited)
    write_image(root / "photos" / photo_name(3), people[0])
    (root / "photos" / photo_name(4)).write_text("not an image")
    write_single_chat(
        root,
        chat(
            "Fakes",
            "public_channel",
            99,
            [
                photo(
                    2, f"photos/{photo_name(2)}", sender="Fakes", sender_id="channel99", text="new"
                ),
                photo(3, f"photos/{photo_name(3)}"),
                photo(4, f"photos/{photo_name(4)}"),
                photo(5, f"photos/{photo_name(5)}"),
                photo(6, NOT_INCLUDED),
                photo(7, "../mine/me.jpg"),
            ],
        ),
    )
    plain = write_image(tmp_path / "loose" / "copy.jpg", original)
    out = tmp_path / "out.json"

    code = main(["scan", str(root), str(plain), "--db", db, "--json", str(out), "--workers", "1"])

    assert code == 0
    document = json.loads(out.read_text())
    results = {
        r["context"]["message_id"] if r["context"] else "plain": r for r in document["results"]
    }
    assert sorted(results, key=str) == [2, 3, 4, 5, 7, "plain"]
    (match,) = results[2]["matches"]
    assert match["kind"] == "manipulated" and match["subject"] == "alice"
    assert results[2]["context"] == {
        "source": "telegram",
        "chat": {"name": "Fakes", "type": "public_channel", "id": 99},
        "message_id": 2,
        "date": when(2).strftime("%Y-%m-%dT%H:%M:%S"),
        "date_unixtime": str(int(when(2).timestamp())),
        "from": "Fakes",
        "from_id": "channel99",
        "forwarded_from": None,
        "text": "new",
        "media": "photo",
    }
    assert results[3]["matches"] == [] and results[3]["error"] is None
    assert results[4]["error"] and results[5]["error"] and results[7]["error"]
    assert "refused" in results[7]["error"] and results[7]["sha256"] is None
    assert (
        results["plain"]["context"] is None and results["plain"]["matches"][0]["kind"] == "repost"
    )
    (summary,) = document["telegram"]
    assert {
        k: summary[k] for k in ("chats", "messages", "images", "not_included", "refused_paths")
    } == {
        "chats": 1,
        "messages": 6,
        "images": 4,
        "not_included": 1,
        "refused_paths": 1,
    }
    printed = capsys.readouterr()
    assert "telegram export" in printed.out and "1 not included" in printed.out
    assert all(line.count("\n") == 0 for line in printed.err.splitlines())


def test_an_export_inside_a_seized_folder_is_read_as_an_export(tmp_path, people):
    original, _ = people_photo(4)
    registered = write_image(tmp_path / "mine" / "me.jpg", original)
    db = str(tmp_path / "r.db")
    assert main(["register", str(registered), "--subject", "alice", "--db", db]) == 0
    seized = tmp_path / "seized"
    export = seized / "phone" / "Telegram Desktop" / "ChatExport_2024-03-01"
    write_image(export / "photos" / photo_name(8), original)
    write_single_chat(
        export, chat("Group", "private_group", 7, [photo(8, f"photos/{photo_name(8)}")])
    )
    write_image(seized / "loose.jpg", people[0])
    out = tmp_path / "out.json"

    assert main(["scan", str(seized), "--db", db, "--json", str(out), "--workers", "1"]) == 0

    document = json.loads(out.read_text())
    by_context = {bool(r["context"]): r for r in document["results"]}
    assert len(document["results"]) == 2
    assert by_context[True]["context"]["chat"]["name"] == "Group"
    assert by_context[True]["matches"][0]["kind"] == "repost"
    assert by_context[False]["path"].endswith("loose.jpg")
    (summary,) = document["telegram"]
    assert summary["path"] == str(export) and summary["images"] == 1


def test_a_result_json_linking_out_of_the_export_is_not_read(tmp_path):
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(json.dumps(chat("C", "personal_chat", 1, [photo(1, "photos/a.jpg")])))
    root = tmp_path / "export"
    root.mkdir()
    os.symlink(elsewhere, root / "result.json")

    (entry,) = read(root)[0]

    assert (
        entry.error
        == f"{root / 'result.json'}: refused, it leaves the export folder (through a link)"
    )


def test_html_account_export_reads_every_chat_folder(tmp_path, people):
    root = tmp_path / "DataExport_html"
    (root / "lists").mkdir(parents=True)
    (root / "export_results.html").write_text(html_page("Exported Data", []))
    for index, name in enumerate(("Bob", "Group")):
        folder = root / "chats" / f"chat_{index + 1:03d}"
        write_image(folder / "photos" / photo_name(index + 1), people[index])
        (folder / "messages.html").write_text(
            html_page(
                name, [html_message(index + 1, media=html_photo(f"photos/{photo_name(index + 1)}"))]
            )
        )
    assert is_telegram_export(root)

    entries, summary = read(root)

    assert [(e.context["chat"]["name"], e.context["message_id"]) for e in entries] == [
        ("Bob", 1),
        ("Group", 2),
    ]
    assert all(Path(e.source).is_file() for e in entries)
    assert (summary.format, summary.chats, summary.images) == ("html", 2, 2)
