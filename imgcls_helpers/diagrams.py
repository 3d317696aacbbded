"""Block diagrams the chapters draw: the pieces of a network as boxes and arrows.

Drawn with matplotlib, so a diagram appears the same in the book, in Jupyter and in Colab,
without image files to ship. Each function returns its figure; the chapters call one where
a reader would rather look than read (the HOG cell/block layout, the 2-conv network, the
residual and bottleneck blocks, patch embedding). :func:`box` and :func:`arrow` are the
only drawing primitives; every diagram is a few calls to them.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

# One palette for every diagram: what a layer does decides its colour.
COLOURS = {
    "conv": "#cfe2f3",
    "norm": "#d9ead3",
    "act": "#fff2cc",
    "pool": "#f4cccc",
    "linear": "#ead1dc",
    "data": "#eeeeee",
    "add": "#ffffff",
}


def canvas(width: float, height: float) -> tuple[Figure, Axes]:
    """A blank figure of ``width`` x ``height`` inches whose axes count in inches too."""
    fig, ax = plt.subplots(figsize=(width, height))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig, ax


def box(
    ax: Axes, x: float, y: float, text: str, *, kind: str = "conv", w: float = 1.6, h: float = 0.45
) -> tuple[float, float]:
    """A rounded box centred at ``(x, y)`` labelled ``text``, coloured by ``kind``; returns
    its centre, so arrows can be drawn to it."""
    ax.add_patch(
        FancyBboxPatch(
            (x - w / 2, y - h / 2),
            w,
            h,
            boxstyle="round,pad=0.02,rounding_size=0.08",
            facecolor=COLOURS[kind],
            edgecolor="#444444",
            linewidth=1,
        )
    )
    ax.text(x, y, text, ha="center", va="center", fontsize=9)
    return x, y


def arrow(
    ax: Axes,
    start: tuple[float, float],
    end: tuple[float, float],
    *,
    text: str = "",
    rad: float = 0,
) -> None:
    """An arrow from ``start`` to ``end`` (``rad`` bends it), with an optional label."""
    ax.add_patch(
        FancyArrowPatch(
            start,
            end,
            arrowstyle="-|>",
            mutation_scale=12,
            color="#444444",
            linewidth=1,
            connectionstyle=f"arc3,rad={rad}",
            shrinkA=0,
            shrinkB=0,
        )
    )
    if text:
        mx, my = (start[0] + end[0]) / 2, (start[1] + end[1]) / 2
        ax.text(mx + 0.08, my, text, ha="left", va="center", fontsize=8, color="#444444")
