"""The diagrams draw what they claim: the right boxes, in order, with the right labels."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from imgcls_helpers import diagrams  # noqa: E402


def box_labels(fig) -> list[str]:
    """The labels of a diagram's boxes, top to bottom, then left to right."""
    ax = fig.axes[0]
    texts = [t for t in ax.texts if t.get_fontsize() == 9]
    texts.sort(key=lambda t: (-round(t.get_position()[1], 2), t.get_position()[0]))
    return [t.get_text() for t in texts]


def test_box_and_arrow_draw_onto_the_axes():
    fig, ax = diagrams.canvas(3, 2)
    a = diagrams.box(ax, 1.5, 1.5, "conv 3x3")
    b = diagrams.box(ax, 1.5, 0.5, "ReLU", kind="act")
    diagrams.arrow(ax, a, b, text="x")
    assert box_labels(fig) == ["conv 3x3", "ReLU"]
    assert len(ax.patches) == 3
