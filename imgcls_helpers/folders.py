"""A forgiving-but-honest dataset for your own photos in ``root/<class_name>/<image files>``.

``torchvision.datasets.ImageFolder`` is fine for curated data sets. Real folders of photos are
messier: a half-copied JPEG, a ``.DS_Store``, a 16-bit PNG from a scanner, a CMYK JPEG from a
print shop, a PNG with a transparent background. ``ImageFolder`` either crashes on those in the
middle of epoch 7, or quietly turns them into wrong pixels (16-bit images become all white,
transparent backgrounds become black).

This module does three things differently:

* ``load_rgb`` turns every common mode into correct 8-bit RGB, and turns every decoding failure
  into one ``BadImageError`` that names the file.
* ``ImageFolderDataset`` decodes every image once, up front, so bad files are found before
  training starts. That costs one full decode per image when the dataset is built.
* Nothing is dropped silently: skipped and ignored files are listed in ``.skipped`` and
  ``.ignored``, and one warning summarises them.
"""

from __future__ import annotations

import struct
import warnings
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")

# Pillow's decoders report broken files with many exception types; each one means
# "this file cannot be used as an image".
_DECODE_ERRORS = (
    OSError,  # includes truncated data and a missing file
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    Image.DecompressionBombError,
)


class BadImageError(ValueError):
    """An image file that cannot be opened or decoded; the message names the file and the cause."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def _has_alpha(im: Image.Image) -> bool:
    """True for modes with an alpha band and for palette/RGB/L images with a transparent colour."""
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
        return True
    return im.mode == "P" and im.palette is not None and im.palette.mode.endswith("A")


def _high_bit_depth_to_8bit(im: Image.Image) -> Image.Image:
    """Scale 16-bit/32-bit/float grey values to 0..255 instead of clipping them.

    Pillow's ``convert("L")`` clips, so a 16-bit photo (values up to 65535) comes out almost
    all white. 16-bit data is divided by 257 (65535 -> 255). Mode "I" (32-bit int) is treated as
    16-bit when its maximum is above 255, else used as it is. Mode "F" (float) is clipped to
    0..255, because float images have no agreed value range.
    """
    values = np.asarray(im).astype(np.float64)
    if im.mode.startswith("I;16") or (im.mode == "I" and values.max(initial=0) > 255):
        values = values / 257.0
    gray = np.clip(np.round(values), 0, 255).astype(np.uint8)
    return Image.fromarray(gray)


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode.startswith("I") or im.mode == "F":
        return _high_bit_depth_to_8bit(im).convert("RGB")
    if _has_alpha(im):
        # A fully transparent pixel should look like paper (white), not like its hidden colour,
        # which is often black.
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB")  # L, 1, P, CMYK, YCbCr, RGB, ...


def load_rgb(path: str | Path) -> Image.Image:
    """Open ``path`` and return a fully decoded 8-bit RGB image, or raise ``BadImageError``.

    ``.load()`` decodes all pixel data now, so a truncated file fails here and not later inside
    a transform. ``ImageFile.LOAD_TRUNCATED_IMAGES`` is left alone: a truncated image is an error,
    not a picture with a grey bottom half.
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            # Phones store photos sideways plus an EXIF note saying how to turn them upright.
            return _to_rgb(ImageOps.exif_transpose(im))
    except UnidentifiedImageError as err:
        reason = "cannot identify image file (not an image, or an unsupported format)"
        raise BadImageError(path, reason) from err
    except _DECODE_ERRORS as err:
        raise BadImageError(path, str(err) or type(err).__name__) from err


class ImageFolderDataset(torch.utils.data.Dataset):
    """Images in ``root/<class_name>/...``; a class index is the folder's place in sorted order.

    ``on_bad="skip"`` records unreadable images in ``.skipped`` and warns once;
    ``on_bad="raise"`` raises the first ``BadImageError``. Non-image files (wrong extension, or
    hidden like ``.DS_Store`` and macOS ``._photo.jpg``) are listed in ``.ignored``.
    """

    def __init__(
        self,
        root: str | Path,
        transform: Callable[[Image.Image], Any] | None = None,
        *,
        on_bad: str = "skip",
        extensions: Iterable[str] = IMAGE_EXTENSIONS,
    ) -> None:
        if on_bad not in ("skip", "raise"):
            raise ValueError(f"on_bad must be 'skip' or 'raise', not {on_bad!r}")
        self.root = Path(root)
        self.transform = transform
        if not self.root.is_dir():
            raise FileNotFoundError(f"dataset root {self.root} does not exist or is not a folder")
        exts = {e.lower() if e.startswith(".") else "." + e.lower() for e in extensions}

        class_dirs = sorted(p for p in self.root.iterdir() if p.is_dir() and p.name[0] != ".")
        if not class_dirs:
            raise ValueError(
                f"{self.root} has no class sub-folders. Expected the layout "
                f"root/<class>/<image>, e.g. {self.root}/cats/001.jpg and {self.root}/dogs/001.jpg"
            )
        self.classes: list[str] = [d.name for d in class_dirs]
        self.class_to_idx: dict[str, int] = {name: i for i, name in enumerate(self.classes)}
        self.samples: list[tuple[Path, int]] = []
        self.skipped: list[tuple[Path, str]] = []
        # Files lying directly in root belong to no class: ignored, but counted.
        self.ignored: list[Path] = sorted(p for p in self.root.iterdir() if p.is_file())

        for class_dir in class_dirs:
            label = self.class_to_idx[class_dir.name]
            n_images, n_bad = 0, 0
            for path in sorted(p for p in class_dir.rglob("*") if p.is_file()):
                hidden = any(part.startswith(".") for part in path.relative_to(class_dir).parts)
                if hidden or path.suffix.lower() not in exts:
                    self.ignored.append(path)
                    continue
                n_images += 1
                try:
                    load_rgb(path)
                except BadImageError as err:
                    if on_bad == "raise":
                        raise
                    self.skipped.append((path, err.reason))
                    n_bad += 1
                    continue
                self.samples.append((path, label))
            if n_images == n_bad:
                raise ValueError(
                    f"class folder {class_dir} has no usable images ({n_images} image files, "
                    f"{n_bad} unreadable). Every sub-folder becomes a class, so it would be a "
                    "class with no examples, and removing it later would shift the class "
                    "indices. Add images to it or remove the folder."
                )
        self.targets: list[int] = [label for _, label in self.samples]
        if self.skipped or self.ignored:
            warnings.warn(self._problems(), UserWarning, stacklevel=2)

    def _name(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def _problems(self) -> str:
        """The warning text: counts plus the first few file names and reasons."""
        parts = [f"ImageFolderDataset('{self.root}'):"]
        if self.skipped:
            n_files = len(self.samples) + len(self.skipped)
            first = "; ".join(f"{self._name(p)}: {r}" for p, r in self.skipped[:3])
            more = "; ..." if len(self.skipped) > 3 else ""
            parts.append(
                f"skipped {len(self.skipped)} of {n_files} image files that could not be read "
                f"(see .skipped): {first}{more}."
            )
        if self.ignored:
            first = ", ".join(self._name(p) for p in self.ignored[:3])
            more = ", ..." if len(self.ignored) > 3 else ""
            also = "Also ignored" if self.skipped else "Ignored"
            parts.append(
                f"{also} {len(self.ignored)} non-image file(s) (see .ignored): {first}{more}."
            )
        return " ".join(parts)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        path, label = self.samples[index]
        image = load_rgb(path)  # a file broken after the scan raises BadImageError naming it
        return (self.transform(image) if self.transform else image), label

    def summary(self) -> str:
        """One line: images, classes, images per class, skipped and ignored files."""
        counts = Counter(self.targets)
        per_class = ", ".join(f"{c}: {counts[i]}" for i, c in enumerate(self.classes))
        return (
            f"{len(self)} images in {len(self.classes)} classes ({per_class}); "
            f"skipped {len(self.skipped)} unreadable, ignored {len(self.ignored)} non-image"
        )

    def __repr__(self) -> str:
        n_classes = len(self.classes)
        return f"ImageFolderDataset(root='{self.root}', images={len(self)}, classes={n_classes})"
