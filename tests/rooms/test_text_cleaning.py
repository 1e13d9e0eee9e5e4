"""What a text may contain."""

from __future__ import annotations

import pytest

from rooms.errors import BadRequest, LimitExceeded
from rooms.machine import clean_text


@pytest.mark.parametrize("text", ["a\u2028b", "a\u2029b", "a\nb", "a\x00b", "a\x1bb"])
def test_one_line_names_refuse_line_breaks_and_controls(text: str) -> None:
    with pytest.raises(BadRequest):
        clean_text(text, 80, "name", single_line=True)


def test_notes_keep_their_line_breaks_but_not_controls() -> None:
    assert clean_text(" first\nsecond\u2028third\t ", 100, "text") == "first\nsecond\u2028third"
    with pytest.raises(BadRequest):
        clean_text("a\x07b", 100, "text")


def test_emoji_and_other_scripts_are_welcome() -> None:
    for text in ("👩‍❤️‍👨 us", "שלום", "の部分", "Zoë"):
        assert clean_text(text, 80, "name", single_line=True) == text


def test_lengths_and_emptiness() -> None:
    with pytest.raises(LimitExceeded):
        clean_text("x" * 81, 80, "name")
    with pytest.raises(BadRequest):
        clean_text("   ", 80, "name")
    assert clean_text("  ", 80, "note", allow_empty=True) == ""
