"""The HTML report as a file: self-contained, escaped, thumbnails reduced and outlined.

What a reader sees in a real browser is pinned in test_report_browser.py.
"""

from __future__ import annotations

import base64
import re
from dataclasses import replace
from datetime import UTC, datetime

import cv2
import numpy as np
import pytest
from conftest import EXAMPLES, save
from reports_support import HOSTILE, make_scan

from counterfake.reports.html import odds_text, render_pairs_report, render_report, write_report
from counterfake.reports.thumbnails import MAX_SIDE, make_thumbnail
from counterfake.results import Cluster, FileResult, Pair, PairsDocument

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


@pytest.fixture(scope="module")
def scanned(tmp_path_factory, photo, garment):
    return make_scan(tmp_path_factory.mktemp("html"), photo, garment)


@pytest.fixture(scope="module")
def page(scanned) -> str:
    _, results = scanned
    return render_report(results, scanned_at=datetime(2026, 5, 6, 7, 8, tzinfo=UTC))


def images(page: str) -> list[np.ndarray]:
    uris = re.findall(r'<img src="data:image/jpeg;base64,([^"]+)"', page)
    return [
        cv2.imdecode(np.frombuffer(base64.b64decode(u), np.uint8), cv2.IMREAD_COLOR) for u in uris
    ]


def red_pixels(bgr: np.ndarray) -> int:
    b, g, r = (bgr[:, :, i].astype(int) for i in range(3))
    return int(((r > 200) & (g < 60) & (b < 60)).sum())


def test_page_forbids_scripts_and_network(page):
    assert f'<meta http-equiv="Content-Security-Policy" content="{CSP}">' in page
    assert "<script" not in page.lower()
    assert not re.search(r'(src|href)="(?!data:)', page)


def test_hostile_names_and_texts_are_escaped(page):
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.jpg" in page
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(2)&gt;" in page
    assert "Leaks &amp; &lt;b&gt;more&lt;/b&gt;" in page
    assert "photos/beach &lt;day&gt;.jpg" in page


def test_summary_counts(page):
    def number(name: str) -> str:
        return re.search(rf'id="{name}">([^<]*)<', page).group(1)

    assert number("files-scanned") == "5"
    assert number("manipulated") == "2" and number("reposts") == "1"
    assert number("people-affected") == "1" and number("errors") == "1"


def test_one_card_per_match_with_reduced_embedded_pictures(page):
    assert page.count('<article class="card match">') == 3
    pictures = images(page)
    assert len(pictures) == 3
    assert all(max(p.shape[:2]) <= MAX_SIDE for p in pictures)


def test_manipulated_matches_are_outlined_in_red_reposts_not(page, scanned):
    _, results = scanned
    kinds = [m.kind for r in results for m in r.matches]
    outlined = [red_pixels(p) > 100 for p in images(page)]
    assert outlined == [kind == "manipulated" for kind in kinds]
    assert page.count('data-outlined="true"') == 2


def test_timeline_says_where_each_date_comes_from(page):
    # the registered photo first appeared in the Telegram message of 2024, before file dates
    assert re.search(r"<td>2024-03-01</td><td>10:20</td>", page)
    assert "Telegram message date" in page
    assert "file modified (UTC)" in page  # the other cards' dates


def test_a_file_gone_since_the_scan_is_said_not_fatal(tmp_path, scanned):
    _, results = scanned
    gone = [replace(results[1], path=str(tmp_path / "gone.jpg"))]
    page = render_report(gone)
    assert "picture not available" in page and page.count('<article class="card match">') == 1


def test_write_is_atomic_and_names_the_path(tmp_path, scanned):
    _, results = scanned
    with pytest.raises(OSError) as caught:
        write_report(tmp_path / "missing" / "r.html", results)
    assert caught.value.filename == str(tmp_path / "missing" / "r.html")
    target = tmp_path / "r.html"
    write_report(target, results)
    assert target.read_text().startswith("<!DOCTYPE html>")
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]


def test_thumbnail_of_a_large_image_is_reduced_with_its_mask_outlined(tmp_path):
    big = np.full((2000, 1500, 3), 128, np.uint8)
    save(tmp_path / "big.png", big)
    mask = np.zeros((2000, 1500), np.uint8)
    mask[500:1500, 400:1100] = 255
    cv2.imwrite(str(tmp_path / "mask.png"), mask)
    thumbnail = make_thumbnail(tmp_path / "big.png", mask=tmp_path / "mask.png")
    assert (thumbnail.width, thumbnail.height) == (240, 320) and thumbnail.outlined
    plain = make_thumbnail(tmp_path / "big.png")
    assert not plain.outlined
    assert make_thumbnail(tmp_path / "nothing.jpg") is None


def test_pairs_report_shows_clusters_with_source_and_outlined_derivative(tmp_path, photo, garment):
    source = str(EXAMPLES / "registered" / "photo.jpg")
    derivative = str(EXAMPLES / "downloaded" / "manipulated.jpg")
    mask = tmp_path / "m.png"
    cv2.imwrite(str(mask), garment.astype(np.uint8) * 255)
    repost = str(EXAMPLES / "downloaded" / "repost.jpg")
    doc = PairsDocument(
        tool="counterfake test",
        images=4,
        errors=[{"path": HOSTILE, "error": f"{HOSTILE}: empty file"}],
        pairs=[
            Pair(source, derivative, "manipulated", 0.91, 1e-9, 0.14, str(mask), 40, "crop", 1),
            Pair(source, repost, "repost", 0.97, 1e-12, 0.0, None, 60, "resolution", 1),
        ],
        clusters=[Cluster(1, source, [source, derivative, repost], affected=True, scene=1)],
        photos_affected=1,
        scenes=1,
        files=[],
    )
    page = render_pairs_report(doc)
    assert page.count('<section class="cluster">') == 1
    assert page.count('<article class="card match pair">') == 2
    assert re.search(r'id="photos-affected">1<', page) and re.search(r'id="manipulated">1<', page)
    # original once, then derivative + source per card
    assert len(images(page)) == 5 and page.count('data-outlined="true"') == 1
    assert "&lt;script&gt;" in page and "<script" not in page


def test_bidi_overrides_and_undecodable_names_are_shown_as_escapes(tmp_path, scanned):
    _, results = scanned
    tricky = [
        replace(results[1], path="invoice\u202egpj.exe"),
        FileResult("bad-\udcff.jpg", error="bad-\udcff.jpg: empty file"),
    ]
    write_report(tmp_path / "r.html", tricky)
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "\u202e" not in page and "invoice\\u202egpj.exe" in page
    assert "bad-\\udcff.jpg: empty file" in page
    assert page.count('<article class="card match">') == 1  # macros' markup is not re-escaped


@pytest.mark.parametrize(
    ("nfa", "text"),
    [
        (3.2e-41, "about 1 in 10^40"),
        (0.004, "about 1 in 10^2"),
        (0.0, "less than 1 in 10^300"),
        (2.0, "about 2 (no match)"),
    ],
)
def test_a_matchs_number_of_false_alarms_reads_as_odds(nfa, text):
    assert odds_text(nfa) == text


def test_every_match_card_states_its_chance_alignment(page, scanned):
    _, results = scanned
    matches = [m for r in results for m in r.matches]
    assert matches and all(0.0 <= m.nfa < 0.01 for m in matches)
    stated = re.findall(r"<dt>Chance alignment</dt><dd>([^<]+)</dd>", page)
    assert len(stated) == len(matches)
    assert all(re.fullmatch(r"(about|less than) 1 in 10\^\d+", text) for text in stated)
