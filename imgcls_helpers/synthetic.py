"""A procedurally drawn colour image dataset that needs no download: "shapes".

Why it exists: the build and CI machines cannot download CIFAR-10 or Flowers-102, yet every
chapter needs images on which the methods of the book behave differently. Each image holds
one shape (the class) in a random colour, size, position and rotation, on a dark or light
background; harder levels add gradients, texture, clutter and noise. Colour, position and
background are nuisances a classifier must learn to ignore, so a linear model on raw pixels
does clearly worse than a small CNN. Every image also has a caption such as "a red star on a
dark background" for the CLIP chapter. The same seed always gives the same images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw

SHAPES = ("circle", "ring", "square", "triangle", "star", "cross", "crescent", "arrow")
COLOURS = {
    "red": (220, 40, 40),
    "orange": (245, 140, 20),
    "yellow": (240, 220, 40),
    "green": (50, 180, 60),
    "cyan": (40, 200, 220),
    "blue": (40, 80, 230),
    "purple": (150, 60, 200),
    "pink": (240, 110, 180),
}

# Per difficulty: shape size (fraction of the image), how far its centre may move from the
# middle, the noise level, whether the background has a gradient / texture, clutter lines.
LEVELS = {
    "easy": dict(size=(0.55, 0.8), shift=0.05, noise=0.0, gradient=False, texture=0.0, clutter=0),
    "medium": dict(size=(0.35, 0.75), shift=0.2, noise=8.0, gradient=True, texture=0.0, clutter=0),
    "hard": dict(size=(0.3, 0.7), shift=0.25, noise=16.0, gradient=True, texture=30.0, clutter=2),
}
SUPERSAMPLE = 4  # draw masks 4x larger, then shrink: smooth (anti-aliased) edges


def _regular_polygon(n: int, radius: float = 1.0, phase: float = -np.pi / 2) -> np.ndarray:
    angles = phase + 2 * np.pi * np.arange(n) / n
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _star() -> np.ndarray:
    outer, inner = _regular_polygon(5), _regular_polygon(5, 0.42, -np.pi / 2 + np.pi / 5)
    return np.stack([outer, inner], axis=1).reshape(-1, 2)


def _cross() -> np.ndarray:
    arm = np.array([(-0.3, -1.0), (0.3, -1.0), (0.3, -0.3)])  # a quarter, turned 4 times
    turn = np.array([[0, -1], [1, 0]])
    return np.concatenate([arm @ np.linalg.matrix_power(turn, k).T for k in range(4)])


_POLYGONS = {  # outlines in a unit square centred on 0, before rotation and scaling
    "square": _regular_polygon(4, phase=np.pi / 4),
    "triangle": _regular_polygon(3),
    "star": _star(),
    "cross": _cross(),
    "arrow": np.array(
        [(-1, -0.3), (0.1, -0.3), (0.1, -0.75), (1, 0), (0.1, 0.75), (0.1, 0.3), (-1, 0.3)]
    ),
}


def shape_mask(shape: str, size: int, centre, radius: float, angle: float) -> np.ndarray:
    """A float mask in [0, 1] of one shape, drawn large and shrunk for smooth edges."""
    big = size * SUPERSAMPLE
    cx, cy, r = centre[0] * big, centre[1] * big, radius * big
    mask = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(mask)

    def disc(x: float, y: float, rad: float, fill: int) -> None:
        draw.ellipse([x - rad, y - rad, x + rad, y + rad], fill=fill)

    if shape == "circle":
        disc(cx, cy, r, 255)
    elif shape == "ring":
        disc(cx, cy, r, 255)
        disc(cx, cy, 0.55 * r, 0)
    elif shape == "crescent":
        disc(cx, cy, r, 255)
        disc(cx + 0.5 * r * np.cos(angle), cy + 0.5 * r * np.sin(angle), 0.85 * r, 0)
    else:
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        points = _POLYGONS[shape] @ rotation.T * r + (cx, cy)
        draw.polygon([tuple(p) for p in points], fill=255)
    small = mask.resize((size, size), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32) / 255.0


def _background(rng: np.random.Generator, size: int, dark: bool, level: dict) -> np.ndarray:
    """A (size, size, 3) float background: flat, or a gradient, plus optional texture."""
    low, high = (0, 80) if dark else (170, 255)
    start = rng.uniform(low, high, 3)
    end = rng.uniform(low, high, 3) if level["gradient"] else start
    direction = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    t = (np.cos(direction) * xx + np.sin(direction) * yy + 1.0) / 2.0
    image = start + (end - start) * t[..., None]
    if level["texture"]:
        freq, phase = rng.uniform(2, 6, 2), rng.uniform(0, 2 * np.pi, 2)
        wave = np.sin(2 * np.pi * freq[0] * xx + phase[0]) * np.sin(
            2 * np.pi * freq[1] * yy + phase[1]
        )
        image = image + level["texture"] * wave[..., None]
    return image


@dataclass
class ShapesData:
    """Arrays of one generated split, plus the attributes each image was drawn with."""

    images: np.ndarray  # (N, H, W, 3) uint8
    labels: np.ndarray  # (N,) int64, index into `classes`
    colours: list[str]
    backgrounds: list[str]
    classes: tuple[str, ...] = SHAPES

    def __len__(self) -> int:
        return len(self.labels)

    def captions(self) -> list[str]:
        """One sentence per image, e.g. "a red star on a dark background"."""
        return [
            f"a {c} {self.classes[y]} on a {b} background"
            for c, y, b in zip(self.colours, self.labels, self.backgrounds, strict=True)
        ]


def make_shapes(
    n: int,
    *,
    size: int = 32,
    difficulty: str = "medium",
    seed: int = 0,
    shapes: tuple[str, ...] = SHAPES,
    colours: tuple[str, ...] | None = None,
) -> ShapesData:
    """Draw ``n`` images with balanced classes; the same arguments always give the same images.

    ``shapes`` picks the classes; ``colours`` restricts which named colours are used (the CLIP
    chapter holds some shape/colour combinations out of training this way).
    """
    if difficulty not in LEVELS:
        raise ValueError(f"difficulty must be one of {sorted(LEVELS)}, not {difficulty!r}")
    unknown = set(shapes) - set(SHAPES) | set(colours or ()) - set(COLOURS)
    if unknown:
        raise ValueError(f"unknown shapes or colours: {sorted(unknown)}")
    level, colour_names = LEVELS[difficulty], list(colours or COLOURS)
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % len(shapes))
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    picked_colours, picked_backgrounds = [], []
    for i, label in enumerate(labels):
        dark = bool(rng.integers(2))
        colour = colour_names[rng.integers(len(colour_names))]
        image = _background(rng, size, dark, level)
        radius = rng.uniform(*level["size"]) / 2
        centre = 0.5 + rng.uniform(-level["shift"], level["shift"], 2)
        centre = np.clip(centre, radius, 1 - radius)
        mask = shape_mask(shapes[label], size, centre, radius, rng.uniform(0, 2 * np.pi))
        fill = np.asarray(COLOURS[colour], dtype=np.float32) + rng.normal(0, 12, 3)
        image = image * (1 - mask[..., None]) + fill * mask[..., None]
        for _ in range(level["clutter"]):  # thin lines that belong to no class
            line = Image.new("L", (size, size), 0)
            ImageDraw.Draw(line).line(list(rng.uniform(0, size, 4)), fill=160, width=1)
            alpha = np.asarray(line, dtype=np.float32)[..., None] / 255.0
            image = image * (1 - alpha) + rng.uniform(0, 255, 3) * alpha
        if level["noise"]:
            image = image + rng.normal(0, level["noise"], image.shape)
        images[i] = np.clip(image, 0, 255).astype(np.uint8)
        picked_colours.append(colour)
        picked_backgrounds.append("dark" if dark else "light")
    return ShapesData(images, labels.astype(np.int64), picked_colours, picked_backgrounds, shapes)


class ShapesDataset(torch.utils.data.Dataset):
    """Generated shapes as a torchvision-style dataset: items are ``(PIL image, label)``.

    It behaves like ``torchvision.datasets.CIFAR10`` (``.classes``, ``.targets``, a
    ``transform``), so a chapter can swap the two without other changes.
    """

    def __init__(self, data: ShapesData, transform=None):
        self.data, self.transform = data, transform
        self.classes = list(data.classes)
        self.targets = data.labels.tolist()

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        image = Image.fromarray(self.data.images[index])
        return (self.transform(image) if self.transform else image), self.targets[index]
