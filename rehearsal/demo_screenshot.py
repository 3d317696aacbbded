"""Screenshot chapter 11's Gradio demo in headless Chromium, to see that the page renders.

The tests drive the demo through its API, which works even if the page's JavaScript does not;
this looks at the page a reader sees. It launches :func:`imgcls_helpers.demo.build` with a
fake classifier (red, green and blue by their share of the mean colour) and a photo as an
example, waits for Gradio's JavaScript to render, and fails when the PNG is missing or blank
(one colour everywhere).

Usage: ``python -m rehearsal.demo_screenshot OUT.png``; needs ``chromium`` on PATH (Debian:
``apt-get install chromium``). Nothing here is part of the book's helpers.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image

from imgcls_helpers.demo import build, launch


def fake_classify(image: Image.Image) -> list[tuple[str, float]]:
    """Red, green and blue scored by their share of the image's mean colour."""
    mean = np.asarray(image, dtype=np.float64).reshape(-1, 3).mean(axis=0)
    shares = mean / max(mean.sum(), 1e-9)
    scores = zip(("red", "green", "blue"), shares, strict=True)
    return sorted(scores, key=lambda kv: kv[1], reverse=True)


def blank_reason(png: Path) -> str | None:
    """Why ``png`` is not a usable screenshot, or None when it is."""
    if not png.is_file() or png.stat().st_size == 0:
        return f"{png} was not written"
    pixels = np.asarray(Image.open(png).convert("RGB")).reshape(-1, 3)
    if len(np.unique(pixels, axis=0)) == 1:
        return f"{png} is blank: every pixel is {tuple(int(v) for v in pixels[0])}"
    return None


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__)
        return 2
    out = Path(argv[0]).resolve()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("chromium is not on PATH (Debian: apt-get install chromium)", file=sys.stderr)
        return 1
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        example = Path(tmp) / "chelsea.jpg"
        Image.fromarray(skimage.data.chelsea()).save(example)
        demo = build(
            fake_classify,
            title="What colour is it?",
            description="A stand-in classifier: red, green and blue by their share of the colour.",
            examples=[str(example)],
        )
        launch(demo, server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
        try:
            # --virtual-time-budget lets the page's scripts run for 10 s of page time before
            # the screenshot, so it shows the rendered app, not Gradio's loading screen.
            command = [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--screenshot={out}",
                "--window-size=1100,900",
                "--virtual-time-budget=10000",
                demo.local_url,
            ]
            run = subprocess.run(command, capture_output=True, text=True, timeout=180)
        finally:
            demo.close()
    problem = blank_reason(out)
    if problem:
        print(f"{problem}\nchromium exit {run.returncode}: {run.stderr[-2000:]}", file=sys.stderr)
        return 1
    print(f"screenshot: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
