"""Checks on the chapters' own text (the exercises are checked by :mod:`imgcls_helpers.labs`).

:func:`claim` guards a sentence of a chapter's prose ("no augmentation overfits most") with
the numbers the run printed, so the text cannot silently become false.
"""

from __future__ import annotations

import os

from .config import announce, get_profile
from .train import fast_dev_run


def claim(holds: bool, text: str) -> None:
    """Check that what the prose says about this run's results (``text``) is true.

    When it holds, nothing is shown. When it does not:

    - in the ``smoke`` profile and under CI (which build the book's pages), it raises
      ``AssertionError``: a page must not say what its numbers contradict;
    - in a fast dev run (``IMGCLS_FAST_DEV_RUN``, one batch of training) it only says the
      claim was not checked: nothing has learned enough for it to mean anything;
    - anywhere else (a reader's own ``cpu`` or ``full`` run, whose data and hardware differ) a
      box says that the text and the numbers disagree, and the chapter carries on.

    It returns nothing, so a cell that ends with it shows no stray ``True``.
    """
    if holds:
        return
    if fast_dev_run() is not None:
        print(f"(not checked in a fast dev run, which trains on one batch: {text})")
        return
    ci = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}
    if ci or get_profile() == "smoke":
        raise AssertionError(f"the chapter's text says: {text}; this run's numbers disagree")
    announce(
        f"THE TEXT SAYS: {text}. THIS RUN'S NUMBERS DISAGREE: your data, profile or hardware "
        "differ from the run the text describes. Trust the numbers printed above."
    )
