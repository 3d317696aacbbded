"""Run settings shared by every chapter: the profile, the device, seeding and the banner.

A chapter must run in three places: CI and offline machines (``smoke``), a reader's laptop
(``cpu``) and a GPU such as Colab (``full``). Rather than scattering ``if`` statements
through the notebooks, each chapter asks this module which profile is active and picks its
sizes with :func:`pick`. The banner from :func:`describe_run` tells the reader what ran.
"""

from __future__ import annotations

import os
import platform
import random
import sys
import textwrap
from dataclasses import dataclass
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

PROFILES = ("smoke", "cpu", "full")
_T = TypeVar("_T")


def get_profile() -> str:
    """Return the active profile: ``IMGCLS_PROFILE`` if set, ``smoke`` under CI, else by hardware.

    ``CI=true`` implies ``smoke`` so that a CI machine never tries to download anything.
    Without either variable, a machine with CUDA gets ``full`` and any other gets ``cpu``.
    """
    requested = os.environ.get("IMGCLS_PROFILE", "").strip().lower()
    if requested:
        if requested not in PROFILES:
            raise ValueError(
                f"IMGCLS_PROFILE={requested!r} is not a profile; use one of {', '.join(PROFILES)}"
            )
        return requested
    if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
        return "smoke"
    return "full" if torch.cuda.is_available() else "cpu"


def pick(*, smoke: _T, cpu: _T, full: _T) -> _T:
    """Choose a value per profile, e.g. ``epochs = pick(smoke=1, cpu=5, full=30)``."""
    return {"smoke": smoke, "cpu": cpu, "full": full}[get_profile()]


def is_offline() -> bool:
    """True when nothing may be downloaded: the ``smoke`` profile or ``IMGCLS_OFFLINE=1``."""
    asked = os.environ.get("IMGCLS_OFFLINE", "").strip().lower() in {"1", "true", "yes"}
    return asked or get_profile() == "smoke"


def data_dir() -> Path:
    """Where datasets are cached: ``IMGCLS_DATA`` or ``~/.cache/imgcls`` (created if missing)."""
    path = Path(os.environ.get("IMGCLS_DATA", Path.home() / ".cache" / "imgcls")).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def get_device(prefer: str | None = None) -> torch.device:
    """The best available device (cuda, then Apple's mps, then cpu), or ``prefer`` if given."""
    if prefer:
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and torch (all devices) so a chapter gives the same numbers twice."""
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002  (seeds code that uses the legacy global RNG)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


NOTICE_WIDTH = 78


@dataclass(frozen=True)
class Notice:
    """A message that must not be missed, in both forms a notebook output keeps.

    Jupyter stores every form of a displayed object. The book (myst-nb) embeds the
    ``text/html`` form as raw HTML, so the notice becomes the theme's warning admonition;
    a terminal or a plain-text viewer shows the ``text/plain`` form. Both carry the whole
    message word for word, because executed notebooks are searched for words such as
    "RANDOM WEIGHTS" or "OFFLINE STAND-IN".
    """

    message: str

    @property
    def title(self) -> str:
        """The upper-case label before the first colon ("RANDOM WEIGHTS"), else "Warning"."""
        label, colon, _ = self.message.partition(":")
        return label.strip() if colon and label.isupper() else "Warning"

    def plain(self) -> str:
        """The message between two rules of '!', wrapped to 78 columns.

        There is no right-hand border: padding lines out to one misaligned the box wherever
        the font or the wrapping differed. Hyphenated and long words (paths) are never split,
        so each word of the message can still be found by a search.
        """
        lines = textwrap.wrap(
            self.message, NOTICE_WIDTH, break_on_hyphens=False, break_long_words=False
        )
        rule = "!" * NOTICE_WIDTH
        return "\n".join([rule, *lines, rule])

    def html(self) -> str:
        """A warning admonition with the same markup Sphinx writes, so the theme styles it.

        The two inline styles repeat the theme's own values, with fallbacks, so that the notice
        still stands out where no theme is loaded (Jupyter, Colab, VS Code). Quotes are
        left as they are (element text needs no escaped quotes), so the message stays
        searchable in the HTML too; only ``&``, ``<`` and ``>`` are escaped.
        """
        border = "border-left: 0.2rem solid var(--pst-color-warning, #f0ad4e)"
        weight = "font-weight: var(--pst-admonition-font-weight-heading, bold)"
        return (
            f'<div class="admonition warning imgcls-notice" style="{border}">\n'
            f'<p class="admonition-title" style="{weight}">{escape(self.title, quote=False)}</p>\n'
            f"<p>{escape(self.message, quote=False)}</p>\n"
            "</div>"
        )

    def _repr_mimebundle_(self, include: object = None, exclude: object = None) -> dict[str, str]:
        """What IPython's ``display`` stores: the HTML for the book, the text for the rest."""
        return {"text/plain": self.plain(), "text/html": self.html()}


def _in_notebook_kernel() -> bool:
    """True inside a Jupyter kernel (the book build, nbmake, Colab), where HTML is shown.

    A kernel imports IPython before any cell runs, so without IPython in ``sys.modules``
    this is a plain interpreter, and IPython (perhaps not even installed) is never imported.
    Terminal IPython has a shell but no kernel, and so gets plain text.
    """
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None) is not None


def announce(message: str) -> None:
    """Show a message that must not be missed, such as a fallback to offline data or weights.

    In a notebook kernel it is displayed as a :class:`Notice` (a warning box on the book's
    pages); anywhere else its plain text is printed, with nothing HTML in it.
    """
    notice = Notice(message)
    if _in_notebook_kernel():
        from IPython.display import display

        display(notice)
    else:
        print(notice.plain(), flush=True)


def describe_run(dataset: str | None = None, weights: str | None = None) -> str:
    """Print and return the banner every chapter shows first: profile, device, date, data, versions.

    The date (UTC, when the chapter ran) tells a reader of a published page how old its
    numbers are.
    """
    import torchvision

    profile, device = get_profile(), get_device()
    rows = [
        ("profile", f"{profile}  (set IMGCLS_PROFILE=smoke|cpu|full to change)"),
        (
            "device",
            str(device) + (f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else ""),
        ),
        ("date", datetime.now(timezone.utc).date().isoformat()),
        ("offline", "yes: nothing will be downloaded" if is_offline() else "no: downloads allowed"),
    ]
    if dataset:
        rows.append(("dataset", dataset))
    if weights:
        rows.append(("weights", weights))
    rows.append(
        (
            "versions",
            f"python {platform.python_version()}, torch {torch.__version__}, "
            f"torchvision {torchvision.__version__}",
        )
    )
    banner = "\n".join(f"{key:>9}: {value}" for key, value in rows)
    if device.type == "cpu" and "google.colab" in sys.modules:
        banner += (
            "\n     note: running on CPU in Colab. For the real recipes choose "
            "Runtime > Change runtime type > GPU, then run the notebook again."
        )
    print(banner, flush=True)
    return banner
