"""Block diagrams the chapters draw: the pieces of a network as boxes and arrows.

Drawn with matplotlib, so a diagram appears the same in the book, in Jupyter and in Colab,
without image files to ship. Each function returns its figure; the chapters call one where
a reader would rather look than read (the HOG cell/block layout, the 2-conv network, the
residual and bottleneck blocks, patch embedding). :func:`box` and :func:`arrow` are the
only drawing primitives; every diagram is a few calls to them.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle

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
    # the axes fill the figure, so one axes unit is one inch
    fig.subplots_adjust(left=0, right=1, bottom=0, top=1)
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


# Chapter 3: the 2-conv network, and chapter 4: the two ResNet blocks.


def _shape_label(ax: Axes, x: float, y: float, text: str) -> None:
    """A tensor shape written under a box (smaller and grey, so it reads as data)."""
    ax.text(x, y, text, ha="center", va="top", fontsize=8, color="#444444")


def two_conv_net(num_classes: int = 10, image_size: int = 32, in_channels: int = 3) -> Figure:
    """Chapter 3's LeNet-style network, left to right, with each layer's output shape.

    The first row is the feature extractor (convolutions and pooling), the second the
    classifier (fully connected layers); the shapes follow from the size formula of section 3.3.
    """
    conv1 = image_size - 4  # 5x5 convolution, no padding
    pool1 = conv1 // 2
    conv2 = pool1 - 4
    pool2 = conv2 // 2
    flat = 16 * pool2 * pool2
    rows = [
        [
            ("input image", "data", f"{in_channels} × {image_size} × {image_size}"),
            ("conv1: 6 filters\n5×5, ReLU", "conv", f"6 × {conv1} × {conv1}"),
            ("max-pool 2×2", "pool", f"6 × {pool1} × {pool1}"),
            ("conv2: 16 filters\n5×5, ReLU", "conv", f"16 × {conv2} × {conv2}"),
            ("max-pool 2×2", "pool", f"16 × {pool2} × {pool2}"),
        ],
        [
            ("flatten", "data", f"{flat}"),
            ("fc1 + ReLU", "linear", "120"),
            ("fc2 + ReLU", "linear", "84"),
            ("fc3", "linear", f"{num_classes} logits"),
        ],
    ]
    fig, ax = canvas(8, 2.55)
    w, h, step = 1.42, 0.55, 1.6
    ys = (2.05, 0.75)
    ends = []
    for row, y in zip(rows, ys, strict=True):
        previous = None
        for i, (label, kind, shape) in enumerate(row):
            x = 0.75 + step * i
            box(ax, x, y, label, kind=kind, w=w, h=h)
            _shape_label(ax, x, y - h / 2 - 0.05, shape)
            if previous is not None:
                arrow(ax, (previous + w / 2, y), (x - w / 2, y))
            previous = x
        ends.append((0.75, previous))
    # Wrap from the end of the first row to the start of the second.
    (_, last_x), (first_x, _) = ends
    turn = (ys[0] + ys[1]) / 2 - 0.08
    ax.plot([last_x + w / 2 + 0.02, last_x + w / 2 + 0.12], [ys[0], ys[0]], color="#444444", lw=1)
    ax.plot([last_x + w / 2 + 0.12] * 2, [ys[0], turn], color="#444444", lw=1)
    ax.plot([last_x + w / 2 + 0.12, first_x], [turn, turn], color="#444444", lw=1)
    arrow(ax, (first_x, turn), (first_x, ys[1] + h / 2))
    ax.text(0.05, ys[0] + h / 2 + 0.12, "features", fontsize=8, style="italic", color="#444444")
    ax.text(0.05, ys[1] + h / 2 + 0.12, "classifier", fontsize=8, style="italic", color="#444444")
    return fig


def _block(main: list[tuple[str, str]], in_channels: int, out_channels: int, stride: int) -> Figure:
    """A residual block drawn top to bottom: the ``main`` boxes (label, kind), then the
    addition and the final ReLU; the shortcut runs down the right, as the identity when the
    shape is unchanged, else through a 1x1 projection (as in :mod:`imgcls_helpers.resnet`)."""
    shrink = "/2" if stride == 2 else ""
    inputs, outputs = f"x: {in_channels} × H × W", f"{out_channels} × H{shrink} × W{shrink}"
    shortcut = None
    if stride != 1 or in_channels != out_channels:
        shortcut = (
            f"1×1 conv, {in_channels}→{out_channels}{_stride_note(stride)}\n+ BN (projection)"
        )
    x, side, step, h, w = 1.3, 3.85, 0.52, 0.32, 2.3
    height = (len(main) + 3) * step + h / 2 + 0.35
    fig, ax = canvas(5.0, height)
    y = height - 0.25
    box(ax, x, y, inputs, kind="data", w=w, h=h)
    fork = y
    previous = y - h / 2
    for label, kind in main:
        y -= step
        box(ax, x, y, label, kind=kind, w=w, h=h)
        arrow(ax, (x, previous), (x, y + h / 2))
        previous = y - h / 2
    y -= step
    box(ax, x, y, "+", kind="add", w=0.36, h=h)
    arrow(ax, (x, previous), (x, y + h / 2))
    add_y = y
    y -= step
    box(ax, x, y, "ReLU", kind="act", w=w, h=h)
    arrow(ax, (x, add_y - h / 2), (x, y + h / 2))
    y -= step
    box(ax, x, y, outputs, kind="data", w=w, h=h)
    arrow(ax, (x, y + step - h / 2), (x, y + h / 2))
    # The shortcut: out of the input, down the right-hand side, into the addition.
    middle = (fork + add_y) / 2
    line = {"color": "#444444", "lw": 1}
    if shortcut is None:
        ax.plot([x + w / 2, side, side], [fork, fork, add_y], **line)
        ax.text(side + 0.08, middle, "identity", fontsize=8, va="center", color="#444444")
    else:
        ax.plot([x + w / 2, side], [fork, fork], **line)
        arrow(ax, (side, fork), (side, middle + 0.3))
        box(ax, side, middle, shortcut, kind="conv", w=2.0, h=0.6)
        ax.plot([side, side], [middle - 0.3, add_y], **line)
    arrow(ax, (side, add_y), (x + 0.18, add_y))
    return fig


def _stride_note(stride: int) -> str:
    return f", stride {stride}" if stride != 1 else ""


def basic_block(in_channels: int = 64, channels: int = 64, stride: int = 1) -> Figure:
    """ResNet's basic block (ResNet-18/34) with its channel counts and its shortcut."""
    main = [
        (f"3×3 conv, {in_channels}→{channels}{_stride_note(stride)}", "conv"),
        ("BN, ReLU", "norm"),
        (f"3×3 conv, {channels}→{channels}", "conv"),
        ("BN", "norm"),
    ]
    return _block(main, in_channels, channels, stride)


def bottleneck_block(in_channels: int = 256, channels: int = 64, stride: int = 1) -> Figure:
    """ResNet's bottleneck block (ResNet-50 and deeper): 1×1 reduce, 3×3, 1×1 expand by 4."""
    out_channels = 4 * channels
    main = [
        (f"1×1 conv, {in_channels}→{channels} (reduce)", "conv"),
        ("BN, ReLU", "norm"),
        (f"3×3 conv, {channels}→{channels}{_stride_note(stride)}", "conv"),
        ("BN, ReLU", "norm"),
        (f"1×1 conv, {channels}→{out_channels} (expand)", "conv"),
        ("BN", "norm"),
    ]
    return _block(main, in_channels, out_channels, stride)


# Chapter 2: HOG's cells and blocks.


def hog_layout(
    image=None,
    *,
    size: tuple[int, int] = (32, 32),
    cell: int = 8,
    block: int = 2,
    bins: int = 9,
) -> Figure:
    """HOG's layout on an image: the grid of ``cell`` x ``cell``-pixel cells, two blocks of
    ``block`` x ``block`` cells one cell apart, and what each stage contributes, down to the
    length of the descriptor (scikit-image's dense layout, as in chapter 2).

    ``image``: an ``(H, W)`` or ``(H, W, 3)`` array drawn under the grid (its shape then
    replaces ``size``); without one, an empty ``size`` grid is drawn.
    """
    if image is not None:
        image = np.asarray(image)
        size = image.shape[:2]
    height, width = size
    cells_y, cells_x = height // cell, width // cell
    blocks_y, blocks_x = cells_y - block + 1, cells_x - block + 1
    if blocks_y < 1 or blocks_x < 1:
        raise ValueError(f"a {height}x{width} image has fewer cells than one block")
    per_block = block * block * bins

    fig, ax = canvas(8, 3.9)
    # The image on the left, 2.6 inches along its longer side; pixel (r, c) has its top-left
    # corner at (left + c * px, top - r * px).
    px = 2.6 / max(height, width)
    left, top = 0.2, 3.7
    extent = (left, left + width * px, top - height * px, top)
    if image is not None:
        ax.imshow(image, extent=extent, cmap="gray", interpolation="nearest")
    else:
        ax.add_patch(Rectangle(extent[::2], width * px, height * px, color="#eeeeee"))
    ax.set_xlim(0, 8)
    ax.set_ylim(0, 3.9)
    side = cell * px
    for k in range(cells_x + 1):
        ax.plot([left + k * side] * 2, [top, top - cells_y * side], color="white", lw=0.8)
    for k in range(cells_y + 1):
        ax.plot([left, left + cells_x * side], [top - k * side] * 2, color="white", lw=0.8)

    # One cell, the first block, and the next block one cell to the right; the same
    # colours mark the matching stages on the right.
    styles = {
        "cell": {"edgecolor": "#ffd400", "lw": 3},
        "block": {"edgecolor": "#cc0000", "lw": 2.5},
        "next": {"edgecolor": "#1f5fbf", "lw": 2.5, "ls": "--"},
    }
    # The cell last and inset a little, so that it does not hide the block's outline.
    for (row, col, n, inset), style in zip(
        [(0, 0, block, 0), (0, 1, block, 0), (0, 0, 1, 0.05)],
        [styles["block"], styles["next"], styles["cell"]],
        strict=True,
    ):
        corner = (left + col * side + inset, top - (row + n) * side + inset)
        length = n * side - 2 * inset
        ax.add_patch(Rectangle(corner, length, length, fill=False, zorder=3, **style))
    note = {"fontsize": 8, "color": "#444444", "va": "top"}
    below = extent[2] - 0.1
    ax.text(left, below, f"{height} × {width} pixels: {cells_y} × {cells_x} cells", **note)
    ax.text(left, below - 0.22, "yellow: one cell", **note)
    ax.text(left, below - 0.44, f"red: one block of {block} × {block} cells", **note)
    ax.text(left, below - 0.66, "blue, dashed: the next block, one cell on", **note)

    # The stages on the right, top to bottom.
    x, w, h, step = 5.75, 3.7, 0.42, 0.72
    stages = [
        (f"cell: {cell} × {cell} pixels", "data", "cell"),
        (f"histogram: {bins} orientation bins", "pool", None),
        (f"block: {block} × {block} cells × {bins} bins = {per_block}", "data", "block"),
        ("L2-Hys: normalise, clip at 0.2, normalise", "norm", None),
        (
            f"{blocks_y} × {blocks_x} block positions × {per_block} = "
            f"{blocks_y * blocks_x * per_block}",
            "linear",
            "next",
        ),
    ]
    y = top - h / 2
    for i, (label, kind, marker) in enumerate(stages):
        box(ax, x, y, label, kind=kind, w=w, h=h)
        if i:
            arrow(ax, (x, y + step - h / 2), (x, y + h / 2))
        if marker:
            corner = (x - w / 2 - 0.42, y - 0.14)
            ax.add_patch(Rectangle(corner, 0.28, 0.28, fill=False, **styles[marker]))
        y -= step
    return fig


def augmentation_pipeline() -> Figure:
    """Where each augmentation hook of ``data.TensorLoader`` and ``train.fit`` acts on a batch
    (chapter 6): a training batch passes every hook, a validation or test batch only the
    normalisation. Yellow boxes draw something at random."""
    fig, ax = canvas(8, 2.4)
    w, h, gap = 1.1, 0.55, 0.2
    columns = [0.2 + w / 2 + i * (w + gap) for i in range(6)]
    steps = [
        ("image_transform\nuint8, per image", "act"),
        ("pixel_augment\nuint8 batch", "act"),
        ("normalise\nmean, std", "data"),
        ("augment\nfloat batch", "act"),
        ("batch_transform\nin fit(): MixUp", "act"),
        ("model", "conv"),
    ]
    rows = [
        (1.7, "a training batch (shuffle=True)", [0, 1, 2, 3, 4, 5]),
        (0.7, "a validation or test batch", [2, 5]),
    ]
    for y, title, used in rows:
        ax.text(0.05, y + h / 2 + 0.15, title, ha="left", va="center", fontsize=10)
        previous = (0.02, y)
        for i in used:
            text, kind = steps[i]
            box(ax, columns[i], y, text, kind=kind, w=w, h=h)
            arrow(ax, previous, (columns[i] - w / 2, y))
            previous = (columns[i] + w / 2, y)
    ax.text(4.0, 0.15, "yellow: random, a new draw every time", ha="center", fontsize=8)
    return fig


# Chapter 8: the ViT's input, from an image to the sequence of tokens.


def patch_embedding(image_size: int = 32, patch_size: int = 4, dim: int = 16) -> Figure:
    """A ViT's input pipeline (chapter 8), top to bottom, with each step's shape: cut the
    image into patches, flatten each, one shared linear map to ``dim`` numbers (the same as
    one convolution with kernel size = stride = ``patch_size``), the class token in front,
    position embeddings added. The learned pieces are pink."""
    if image_size % patch_size:
        raise ValueError(f"patch size {patch_size} does not divide image size {image_size}")
    side = image_size // patch_size
    n, numbers = side * side, 3 * patch_size * patch_size
    fig, ax = canvas(7.2, 4.4)
    x, w, h, step = 3.2, 3.1, 0.42, 0.62
    main = [
        (f"image: 3 × {image_size} × {image_size}", "data"),
        (f"cut into {patch_size} × {patch_size} patches: {side} × {side} = {n}", "data"),
        (f"flatten each patch: {n} × {numbers}", "data"),
        (f"linear map {numbers} → {dim}, shared: {n} × {dim}", "linear"),
        (f"class token in front: {n + 1} × {dim}", "add"),
        (f"+ position embeddings: {n + 1} × {dim}", "add"),
        ("encoder blocks", "norm"),
    ]
    y = 4.4 - 0.35
    centres = []
    for i, (label, kind) in enumerate(main):
        box(ax, x, y, label, kind=kind, w=w, h=h)
        if i:
            arrow(ax, (x, y + step - h / 2), (x, y + h / 2))
        centres.append(y)
        y -= step
    # The learned inputs on the right, each pointing at the step that uses it.
    right, rw = 6.15, 1.9
    for row, label in [(4, f"class token: 1 × {dim}"), (5, f"position table: {n + 1} × {dim}")]:
        box(ax, right, centres[row], label, kind="linear", w=rw, h=h)
        arrow(ax, (right - rw / 2, centres[row]), (x + w / 2, centres[row]))
    # The shortcut on the left: one convolution does the middle three steps at once.
    left = x - w / 2 - 0.15
    line = {"color": "#444444", "lw": 1}
    ax.plot([x - w / 2, left, left], [centres[0], centres[0], centres[3]], **line)
    arrow(ax, (left, centres[3]), (x - w / 2, centres[3]))
    ax.text(
        0.1,
        (centres[0] + centres[3]) / 2,
        f"the same as\none Conv2d(3, {dim},\nkernel_size={patch_size},\nstride={patch_size})",
        ha="left",
        va="center",
        fontsize=8,
        color="#444444",
    )
    ax.text(right, centres[6], "pink: learned", ha="center", va="center", fontsize=8)
    return fig


# Chapter 10: the protocol every approach follows.


def comparison_protocol(seeds: int = 3, epochs: int = 4) -> Figure:
    """One approach in chapter 10's comparison, left to right: train on the training split
    (``epochs`` epochs for every network, once per seed), choose the epoch (or the SVM's
    ``C``) on the validation split, score the test split once, one result per run; the
    runs of all seeds are summarised as mean ± standard deviation."""
    fig, ax = canvas(8, 2.3)
    w, h, top, bottom = 1.4, 0.6, 1.45, 0.45
    xs = [0.8 + 1.6 * i for i in range(5)]
    steps = [
        ("training split", "data"),
        (f"train: {epochs} epochs\n(networks)", "conv"),
        ("choose the epoch\nor C", "norm"),
        ("score the test\nsplit once", "pool"),
        (f"mean ± sd\nover {seeds} seeds", "linear"),
    ]
    for i, (label, kind) in enumerate(steps):
        box(ax, xs[i], top, label, kind=kind, w=w, h=h)
        if i:
            arrow(ax, (xs[i - 1] + w / 2, top), (xs[i] - w / 2, top))
    for x, label in [(xs[2], "validation split"), (xs[3], "test split")]:
        box(ax, x, bottom, label, kind="data", w=w, h=0.4)
        arrow(ax, (x, bottom + 0.2), (x, top - h / 2))
    # The loop over seeds: from the scored run back to a fresh training run.
    loop = top + h / 2 + 0.3
    line = {"color": "#444444", "lw": 1}
    ax.plot([xs[3], xs[3], xs[1]], [top + h / 2, loop, loop], **line)
    arrow(ax, (xs[1], loop), (xs[1], top + h / 2))
    ax.text(
        (xs[1] + xs[3]) / 2,
        loop + 0.08,
        f"again for each of {seeds} seeds",
        ha="center",
        va="bottom",
        fontsize=8,
        color="#444444",
    )
    return fig


# Chapter 5: what each transfer strategy trains.


def transfer_strategies(
    groups: tuple[str, ...] = ("stem", "layer1", "layer2", "layer3", "layer4", "fc"),
) -> Figure:
    """Chapter 5's strategies, one row each, over a network's layer groups from the input
    (left) to the head (right): grey groups are frozen, green ones train from learned weights
    (pretrained, or the head's from phase 1), yellow ones train from random weights."""
    n = len(groups)
    rows = [
        ("feature extraction", ["data"] * (n - 1) + ["act"]),
        ("fine-tuning, phase 1", ["data"] * (n - 1) + ["act"]),
        ("fine-tuning, phase 2:\nsmaller learning rates\ntowards the input", ["norm"] * n),
        ("from scratch (control)", ["act"] * n),
    ]
    step, w, h = 1.0, 0.88, 0.42
    x0 = 8 - 0.2 - w / 2 - step * (n - 1)
    fig, ax = canvas(8, 3.6)
    note = {"fontsize": 8, "color": "#444444"}
    ax.text(x0 - w / 2, 3.42, "input  →", ha="left", va="center", **note)
    ax.text(x0 + step * (n - 1) + w / 2, 3.42, "→  head", ha="right", va="center", **note)
    for r, (label, kinds) in enumerate(rows):
        y = 2.95 - 0.72 * r
        ax.text(0.1, y, label, ha="left", va="center", fontsize=10, linespacing=1.1)
        for i, (group, kind) in enumerate(zip(groups, kinds, strict=True)):
            box(ax, x0 + step * i, y, group, kind=kind, w=w, h=h)
    legend = [
        ("data", "frozen"),
        ("norm", "trains, from learned weights"),
        ("act", "trains, from random weights"),
    ]
    x = 0.1
    for kind, text in legend:
        swatch = Rectangle((x, 0.12), 0.22, 0.16, facecolor=COLOURS[kind], edgecolor="#444444")
        ax.add_patch(swatch)
        ax.text(x + 0.3, 0.2, text, ha="left", va="center", **note)
        x += 0.6 + 0.06 * len(text)
    return fig
