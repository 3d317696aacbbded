"""Check a built site before it is published: every chapter of the toc was built and executed
in the profile being published, and no chapter fell back to its offline path.

A failed download does not fail `make book`: the chapter shows a loud OFFLINE STAND-IN or
RANDOM WEIGHTS notice (or NOT RUN for an experiment it then skips) and carries on offline
(README, "Offline behaviour"). That is right on a reader's laptop, but such pages must not
replace the published book. In the cpu and full profiles, with the internet, none of these
notices should appear (the rehearsal, rehearsal/scan.py, holds executed chapters to the same).

Only cell *outputs* are read, because the pages also show each chapter's source code, which
contains the notices as strings. A notice is shown either as a warning box (HTML) or as text
between rules of `!`; the box's title repeats the message's label and is skipped.

Usage: python .github/scripts/check_site.py --profile cpu [--site book/_build/html]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "book" / "_build" / "html"  # where `make book` writes the site
TOC = ROOT / "book" / "_toc.yml"

FALLBACKS = {
    r"OFFLINE STAND-IN": "offline stand-in data or model instead of the real one",
    r"RANDOM WEIGHTS": "random weights instead of the pretrained ones",
    r"NOT RUN\b": "an experiment was skipped",
    r"offline stand-in for \w+": "the generated shapes stood in for a real dataset",
}


class _Outputs(HTMLParser):
    """Collects the text inside myst-nb's `<div class="cell_output ...">` containers."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0  # div nesting inside the current cell output, 0 outside one
        self.in_title = False
        self.parts: list[str] = []

    def handle_starttag(self, tag, attrs):
        classes = (dict(attrs).get("class") or "").split()
        if tag == "p" and "admonition-title" in classes:
            self.in_title = True
        if tag != "div":
            return
        if self.depth:
            self.depth += 1
        elif "cell_output" in classes:
            self.depth = 1
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag == "p":
            self.in_title = False
        if tag == "div" and self.depth:
            self.depth -= 1

    def handle_data(self, data):
        if self.depth and not self.in_title:
            self.parts.append(data)


def output_text(html: str) -> str:
    """The text of every cell output of a page, with the `!` rules of plain-text notices and
    all line breaks folded into single spaces, so that a wrapped notice reads as one line."""
    parser = _Outputs()
    parser.feed(html)
    return " ".join(re.sub(r"!{3,}", " ", "".join(parser.parts)).split())


def chapters(toc: Path) -> list[str]:
    """The chapter notebooks the toc lists, e.g. ``notebooks/01_input_pipeline``."""
    return re.findall(r"file:\s*(notebooks/\S+)", toc.read_text())


def check(site: Path, toc: Path, profile: str) -> list[str]:
    """One line per reason not to publish the site."""
    problems = []
    pages = chapters(toc)
    if not pages:
        problems.append(f"{toc} lists no chapter under notebooks/")
    for chapter in pages:
        page = site / f"{chapter}.html"
        if not page.exists():
            problems.append(f"{page} was not built")
            continue
        text = output_text(page.read_text(encoding="utf-8"))
        ran = re.search(r"\bprofile: (\w+)", text)
        if not ran:
            problems.append(f"{page}: no run banner in the outputs: was it executed?")
        elif ran.group(1) != profile:
            problems.append(f"{page} ran in the {ran.group(1)} profile, not {profile}")
        for pattern, meaning in FALLBACKS.items():
            if found := re.search(pattern, text):
                shown = text[found.start() : found.start() + 160]
                problems.append(f"{page}: {meaning}: {shown}...")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", required=True, choices=["cpu", "full"])
    parser.add_argument("--site", type=Path, default=SITE)
    parser.add_argument("--toc", type=Path, default=TOC)
    args = parser.parse_args(argv)
    problems = check(args.site, args.toc, args.profile)
    annotate = os.environ.get("GITHUB_ACTIONS") == "true"
    for problem in problems:
        print(f"::error title=site check::{problem}" if annotate else f"PROBLEM: {problem}")
    if problems:
        print(f"site check: {len(problems)} problem(s); this site must not be published")
        return 1
    print(f"site check: {len(chapters(args.toc))} chapter page(s) in the {args.profile} profile")
    return 0


if __name__ == "__main__":
    sys.exit(main())
