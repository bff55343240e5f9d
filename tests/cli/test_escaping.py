"""Session data never drives the terminal: every human-readable output shows it escaped."""

from __future__ import annotations

import pytest

from sharedctx.cli._views import printable

CLEAR = "\x1b[2J"
TITLE = "\x1b]0;owned\x07"
C1_CSI = "\x9b31m"
RIGHT_TO_LEFT = "\u202e"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("analysis:mind:tim", "analysis:mind:tim"),
        ("café 日本 🙂 [bold]", "café 日本 🙂 [bold]"),  # printable, markup included
        (CLEAR + "k", "\\x1b[2Jk"),
        (TITLE, "\\x1b]0;owned\\x07"),
        ("a\nb\rc\td\x00", "a\\nb\\rc\\td\\x00"),  # one line
        ("\x7f\x85" + C1_CSI, "\\x7f\\x85\\x9b31m"),  # DEL and C1
        ("\u202eevil\u2066\u200b\u2028", "\\u202eevil\\u2066\\u200b\\u2028"),  # bidi, invisible
        ("\U000e0041", "\\U000e0041"),  # a tag character
    ],
)
def test_printable_escapes_what_a_terminal_would_act_on(text: str, shown: str) -> None:
    assert printable(text) == shown
    assert printable(text).isprintable()


def test_printable_is_the_identity_on_printable_text() -> None:
    text = "".join(chr(code) for code in range(0x20, 0x3000) if chr(code).isprintable())
    assert printable(text) is text
