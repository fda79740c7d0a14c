"""Names chosen by others are shown as escapes where they could break a line or a page."""

from __future__ import annotations

from counterfake.text import one_line, printable


def test_bidi_overrides_controls_and_lone_surrogates_are_escaped():
    assert printable("invoice\u202egpj.exe") == "invoice\\u202egpj.exe"
    assert printable("a\x1bb") == "a\\x1bb"
    assert printable("bad-\udcff.jpg") == "bad-\\udcff.jpg"
    assert printable("plain name, ünïcode ✓") == "plain name, ünïcode ✓"


def test_kept_characters_stay_as_they_are():
    assert printable("line one\nline two\tend") == "line one\\nline two\\tend"
    assert printable("line one\nline two\tend", keep="\n\t") == "line one\nline two\tend"


def test_a_message_becomes_one_line():
    assert one_line("  cannot\n read:\r\n  \u2028broken ") == "cannot read: broken"
