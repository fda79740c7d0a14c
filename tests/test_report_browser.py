"""The HTML report in a real browser: Debian's Chromium driven by Playwright.

Skipped when /usr/bin/chromium is absent, unless COUNTERFAKE_REQUIRE_BROWSER=1 (as in CI), where
a missing browser is a failure. Playwright's own browser downloads are never used.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from reports_support import CONTEXT, HOSTILE, make_scan

from counterfake.reports.html import write_report

CHROMIUM = Path(os.environ.get("COUNTERFAKE_CHROMIUM", "/usr/bin/chromium"))
REQUIRED = os.environ.get("COUNTERFAKE_REQUIRE_BROWSER") == "1"

if not CHROMIUM.exists():
    if REQUIRED:
        pytest.fail(f"{CHROMIUM} is missing and COUNTERFAKE_REQUIRE_BROWSER=1", pytrace=False)
    pytest.skip(f"{CHROMIUM} is not installed", allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def report(tmp_path_factory, photo, garment) -> tuple[Path, list[dict]]:
    folder = tmp_path_factory.mktemp("browser")
    _, results = make_scan(folder, photo, garment)
    write_report(folder / "report.html", results)
    return folder / "report.html", results


@pytest.fixture(scope="module")
def opened(report):
    """The report loaded in Chromium, with every console message and failed request recorded."""
    path, _ = report
    problems: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on(
            "console", lambda message: problems.append(f"console {message.type}: {message.text}")
        )
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.on("requestfailed", lambda request: problems.append(f"failed: {request.url}"))
        page.on("dialog", lambda dialog: problems.append(f"dialog: {dialog.message}"))
        page.goto(path.as_uri())
        page.wait_for_load_state("load")
        yield page, problems
        browser.close()


def test_opens_without_errors_or_requests(opened):
    _, problems = opened
    assert problems == []


def test_summary_counts_are_visible(opened):
    page, _ = opened
    for name, value in [
        ("files-scanned", "5"),
        ("manipulated", "2"),
        ("reposts", "1"),
        ("people-affected", "1"),
        ("errors", "1"),
    ]:
        number = page.locator(f"#{name}")
        assert number.is_visible() and number.inner_text() == value


def test_a_card_per_match_each_picture_loaded(opened, report):
    page, _ = opened
    _, results = report
    cards = page.locator("article.card.match")
    assert cards.count() == sum(len(r.matches) for r in results) == 3
    widths = page.locator("article.card.match img").evaluate_all(
        "images => images.map(image => image.complete ? image.naturalWidth : 0)"
    )
    assert len(widths) == 3 and all(width > 0 for width in widths)


def test_altered_regions_are_outlined_in_the_shown_pictures(opened):
    page, _ = opened
    outlined = page.locator('article.card.match img[data-outlined="true"]')
    assert outlined.count() == 2
    for source in outlined.evaluate_all("images => images.map(image => image.src)"):
        data = base64.b64decode(source.split(",", 1)[1])
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        red = (bgr[:, :, 2] > 200) & (bgr[:, :, 1] < 60) & (bgr[:, :, 0] < 60)
        assert red.sum() > 100


def test_chat_context_is_shown(opened):
    page, _ = opened
    context = page.locator(".context")
    assert context.count() == 1 and context.is_visible()
    text = context.inner_text()
    assert CONTEXT["chat"]["name"] in text and "Mallory" in text and "42" in text
    assert "<img src=x onerror=alert(2)>" in text  # shown as text, not made an element


def test_hostile_file_name_is_text(opened):
    page, _ = opened
    assert page.get_by_text(HOSTILE, exact=False).first.is_visible()
    headings = page.locator("article.card.match h3").all_inner_texts()
    assert any(h.endswith(HOSTILE) for h in headings)
    assert page.locator("article script, main script").count() == 0


def test_unreadable_files_listed_on_request(opened):
    page, _ = opened
    page.locator("details summary").click()
    assert page.locator("table.errors td").first.inner_text().endswith("d_empty.jpg: empty file")
