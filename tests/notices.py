"""Read back what ``config.announce`` printed in a terminal, for the tests that check it."""

from __future__ import annotations


def notice_text(out: str) -> str:
    """The text between announce's two rules of '!', all whitespace removed, so a phrase
    that the notice's wrapping split across lines still matches (after the same squeeze)."""
    inside, lines = False, []
    for line in out.splitlines():
        if line == "!" * 78:
            inside = not inside
        elif inside:
            lines.append(line)
    assert not inside, "announce's second rule of '!' is missing"
    return "".join("".join(lines).split())
