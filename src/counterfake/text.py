"""Text from outside (file names, chat names, error messages) made safe to show.

A file or chat name is chosen by whoever made it; shown to a reader it must not break a line,
reorder what is seen (a right-to-left override turning ``gpj.exe`` around) or make printing
fail (a file name that is not UTF-8 holds lone surrogates).
"""

from __future__ import annotations

import unicodedata

BIDI_CONTROLS = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_ESCAPED_CATEGORIES = ("Cc", "Cs", "Zl", "Zp")  # controls, lone surrogates, line separators


def printable(text: str, *, keep: str = "") -> str:
    """``text`` with control characters, line breaks, bidi overrides and lone surrogates shown
    as escapes (``\\n``, ``\\u202e``), except the characters in ``keep``."""
    if text.isprintable():  # the usual case (isprintable is False for all of the above)
        return text
    return "".join(
        char.encode("unicode_escape", "backslashreplace").decode("ascii")
        if char not in keep
        and (unicodedata.category(char) in _ESCAPED_CATEGORIES or char in BIDI_CONTROLS)
        else char
        for char in text
    )


def one_line(text: str) -> str:
    """A message from anywhere as one printable line, its runs of white space made one space."""
    return printable(" ".join(text.split()))
