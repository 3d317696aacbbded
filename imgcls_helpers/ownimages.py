"""Your own images, end to end: a realistic messy folder, a split you can commit, class weights.

Chapter 11 trains on a reader's own ``root/<class>/<image files>``. Offline (CI, the book build)
there is no such folder, so ``make_messy_folder`` builds one: shapes drawn on crops of real
photos that scikit-image and scikit-learn ship, with the mess a real folder has planted in it on
purpose (a truncated JPEG, a web page saved as ``.jpg``, ``.DS_Store``, grayscale/CMYK/RGBA/16-bit
files, a minority class and a few wrong labels). Everything planted is recorded in a
``MessyFolder``, so the chapter (and the tests) can check that each problem is found.

The rest is the plumbing around your own data: a stratified train/val/test split
(``split_indices``), saved as a CSV you can review and commit (``save_split``/``load_split``,
which refuse to silently put new photos into training), weights for an imbalanced loss
(``class_weights``), and safe unpacking of a zip uploaded to Colab (``extract_upload``).
"""

from __future__ import annotations

import csv
import functools
import io
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage import data as skdata
from sklearn.datasets import load_sample_images
from sklearn.utils.class_weight import compute_class_weight

from imgcls_helpers.folders import IMAGE_EXTENSIONS, ImageFolderDataset
from imgcls_helpers.synthetic import COLOURS, shape_mask

CLASSES = ("circle", "square", "star", "triangle")
SPLITS = ("train", "val", "test")
ODD_MODES = ("L", "CMYK", "RGBA", "I;16")  # one file of each is planted
_ODD_SUFFIX = {"L": ".jpg", "CMYK": ".jpg", "RGBA": ".png", "I;16": ".png"}
_SUFFIXES = (".jpg", ".jpg", ".jpg", ".JPG", ".jpeg", ".png")  # mostly JPEG, some PNG
_NOT_AN_IMAGE = b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head></html>\n"
_DS_STORE = b"\x00\x00\x00\x01Bud1" + bytes(2038)  # the start of a real macOS .DS_Store
_APPLE_DOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(4070)
_README = "Photos for my classifier. One folder per class.\n"


@dataclass
class MessyFolder:
    """What ``make_messy_folder`` planted; all paths are ``root / <class> / <file>``."""

    root: Path
    classes: tuple[str, ...]
    counts: dict[str, int]  # readable images in each class folder (mislabeled ones included)
    broken: list[Path] = field(default_factory=list)  # image-named files that cannot be decoded
    ignored: list[Path] = field(default_factory=list)  # hidden or non-image files
    odd_modes: dict[str, Path] = field(default_factory=dict)  # PIL mode -> file saved in it
    mislabeled: dict[Path, str] = field(default_factory=dict)  # file -> the class it shows


@functools.cache
def _photos() -> tuple[np.ndarray, ...]:
    """RGB photos bundled inside the installed packages (no download; these need no pooch)."""
    bundled = (skdata.astronaut(), skdata.chelsea(), skdata.coffee(), skdata.rocket())
    return bundled + tuple(load_sample_images().images)  # china.jpg and flower.jpg


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114])


def _draw(
    rng: np.random.Generator, shape: str, size_range: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """One photo crop with ``shape`` on it: (H, W, 3) uint8 image and (H, W) float alpha mask."""
    lo, hi = size_range
    w = int(rng.integers(lo, hi + 1))
    h = int(np.clip(round(w * np.exp(rng.uniform(np.log(0.6), np.log(1.6)))), lo, hi))
    photos = _photos()
    photo = photos[rng.integers(len(photos))]
    zoom = rng.uniform(1.0, 2.5)  # crop a region 1-2.5x the output size, then shrink it
    fit = min(1.0, photo.shape[0] / (h * zoom), photo.shape[1] / (w * zoom))
    ch, cw = int(h * zoom * fit), int(w * zoom * fit)
    y0 = rng.integers(photo.shape[0] - ch + 1)
    x0 = rng.integers(photo.shape[1] - cw + 1)
    crop = Image.fromarray(photo[y0 : y0 + ch, x0 : x0 + cw]).resize((w, h), Image.BILINEAR)
    image = np.asarray(crop, dtype=np.float64)

    side = min(w, h)  # the shape is drawn in a square patch placed somewhere in the image
    radius = rng.uniform(0.28, 0.45)
    centre = np.clip(0.5 + rng.uniform(-0.08, 0.08, 2), radius, 1 - radius)
    mask = shape_mask(shape, side, centre, radius, rng.uniform(0, 2 * np.pi))
    oy, ox = int(rng.integers(h - side + 1)), int(rng.integers(w - side + 1))
    alpha = np.zeros((h, w))
    alpha[oy : oy + side, ox : ox + side] = mask
    # A random colour, darkened or lightened where it is about as bright as the photo under the
    # shape, so that the shape stays visible in the grayscale and 16-bit copies too.
    under = _luminance((image * alpha[..., None]).sum((0, 1)) / max(alpha.sum(), 1e-6))
    colours = list(COLOURS.values())
    fill = np.array(colours[rng.integers(len(colours))], dtype=np.float64)
    if abs(_luminance(fill) - under) < 60:
        fill = fill * 0.35 if under > 128 else fill + (255 - fill) * 0.65
    fill = fill + rng.normal(0, 10, 3)
    image = image * (1 - alpha[..., None]) + fill * alpha[..., None]
    return np.clip(np.round(image), 0, 255).astype(np.uint8), alpha


def _encode(image: np.ndarray, alpha: np.ndarray, suffix: str, mode: str, quality: int) -> bytes:
    """The file's bytes: RGB, or one of ``ODD_MODES``, as JPEG or PNG by ``suffix``."""
    im = Image.fromarray(image)
    if mode == "RGBA":  # a cut-out: the shape is opaque, the photo around it transparent
        im.putalpha(Image.fromarray(np.round(alpha * 255).astype(np.uint8)))
    elif mode == "I;16":  # a 16-bit grayscale scan: values 0..65535
        im = Image.fromarray(np.asarray(im.convert("L"), dtype=np.uint16) * 257)
    elif mode != "RGB":
        im = im.convert(mode)
    buf = io.BytesIO()
    if suffix.lower() == ".png":
        im.save(buf, "PNG", compress_level=1)  # fast; size does not matter here
    else:
        im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def make_messy_folder(
    root: str | Path,
    *,
    seed: int = 0,
    per_class: int = 60,
    minority: tuple[str, int] | None = ("star", 15),
    n_mislabeled: int = 4,
    size_range: tuple[int, int] = (48, 220),
) -> MessyFolder:
    """Write ``root/<shape>/IMG_0001.jpg ...`` with planted mess, and return what was planted.

    ``per_class`` readable images go into each of ``CLASSES``, except ``minority = (class, n)``,
    which gets ``n`` (None: balanced). Of those, ``n_mislabeled`` show another class's shape,
    and one each is saved in the modes ``ODD_MODES``. On top come two unreadable files, two
    hidden macOS files and a README. The same arguments always write the same bytes.
    """
    root = Path(root)
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root} is not empty; delete it or pick a new folder")
    counts = dict.fromkeys(CLASSES, per_class)
    if minority is not None:
        if minority[0] not in CLASSES:
            raise ValueError(f"minority class must be one of {CLASSES}, not {minority[0]!r}")
        counts[minority[0]] = minority[1]
    if min(counts.values()) < 3:
        raise ValueError(f"every class needs at least 3 images (one per split), got {counts}")
    n_total = sum(counts.values())
    if not 0 <= n_mislabeled <= n_total - len(ODD_MODES):
        raise ValueError(f"n_mislabeled must be in 0..{n_total - len(ODD_MODES)}")
    if not 16 <= size_range[0] <= size_range[1]:
        raise ValueError(f"size_range must be (low, high) with 16 <= low <= high: {size_range}")

    rng = np.random.default_rng(seed)
    folders = [c for c in CLASSES for _ in range(counts[c])]
    shows = list(folders)  # the shape each image really shows
    picks = rng.choice(n_total, n_mislabeled + len(ODD_MODES), replace=False)
    for k, i in enumerate(picks[:n_mislabeled]):
        others = [c for c in CLASSES if c != folders[i]]
        shows[i] = others[k % len(others)]  # varied: not every wrong label hides the same class
    odd = {int(i): mode for i, mode in zip(picks[n_mislabeled:], ODD_MODES, strict=True)}

    messy = MessyFolder(root, CLASSES, counts)
    for c in CLASSES:
        (root / c).mkdir(parents=True)
    for i, (folder, shape) in enumerate(zip(folders, shows, strict=True)):
        mode = odd.get(i, "RGB")
        suffix = _ODD_SUFFIX.get(mode) or _SUFFIXES[rng.integers(len(_SUFFIXES))]
        path = root / folder / f"IMG_{i + 1:04d}{suffix}"
        image, alpha = _draw(rng, shape, size_range)
        path.write_bytes(_encode(image, alpha, suffix, mode, int(rng.integers(70, 96))))
        if mode != "RGB":
            messy.odd_modes[mode] = path
        if shape != folder:
            messy.mislabeled[path] = shape

    # The mess: a copy that stopped half way, a web page saved as .jpg, macOS litter, a README.
    first = sorted((root / CLASSES[0]).iterdir())[0]
    planted = {
        root / CLASSES[1] / f"IMG_{n_total + 1:04d}.jpg": None,  # drawn below, then cut
        root / CLASSES[2] / "download.jpg": _NOT_AN_IMAGE,
        root / CLASSES[3] / ".DS_Store": _DS_STORE,
        first.with_name("._" + first.name): _APPLE_DOUBLE,
        root / "README.txt": _README.encode(),
    }
    for path, content in planted.items():
        if content is None:
            image, alpha = _draw(rng, path.parent.name, size_range)
            content = _encode(image, alpha, ".jpg", "RGB", 90)
            content = content[: len(content) // 2]
        path.write_bytes(content)
    messy.broken = list(planted)[:2]
    messy.ignored = list(planted)[2:]
    return messy


def split_indices(
    targets: Sequence[int] | np.ndarray,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    *,
    classes: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """Stratified train/val/test indices: each split keeps the class proportions of the whole.

    Written by hand because it is short and is the idea itself: shuffle each class on its own
    and cut it by ``fractions``, giving val and test at least one image of every class (a test
    set without a class cannot measure it). scikit-learn's ``train_test_split(stratify=...)``
    rounds over the whole data set instead, so a class of 5 can end up with no test image.
    A class too small for three splits is an error naming it (``classes`` gives the names).
    """
    targets = np.asarray(targets)
    if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"fractions must be three numbers > 0 that sum to 1, not {fractions}")
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in SPLITS}
    for label in np.unique(targets):
        idx = rng.permutation(np.flatnonzero(targets == label))
        n_val, n_test = (max(1, int(np.floor(len(idx) * f + 0.5))) for f in fractions[1:])
        if len(idx) - n_val - n_test < 1:
            name = repr(classes[label]) if classes is not None else f"index {label}"
            raise ValueError(
                f"class {name} has only {len(idx)} image(s); train, val and test each need at "
                "least one. Add images to it or remove the class."
            )
        parts["test"].append(idx[:n_test])
        parts["val"].append(idx[n_test : n_test + n_val])
        parts["train"].append(idx[n_test + n_val :])
    return {name: np.sort(np.concatenate(p)).astype(np.int64) for name, p in parts.items()}


def _relative(dataset: ImageFolderDataset, path: str | Path) -> str:
    return Path(path).relative_to(dataset.root).as_posix()


def save_split(path: str | Path, dataset: ImageFolderDataset, split: dict[str, np.ndarray]) -> None:
    """Write one CSV row per image: file (relative to ``dataset.root``), class, split.

    A text file in git makes the split reviewable and reproducible: a diff shows which photos
    moved. Every image of ``dataset`` must be in exactly one split.
    """
    which: dict[int, str] = {}
    for part, indices in split.items():
        for i in np.asarray(indices).tolist():
            if not 0 <= i < len(dataset) or i in which:
                problem = "listed twice" if i in which else "out of range"
                raise ValueError(f"split index {i} ({part}) is {problem} for {len(dataset)} images")
            which[i] = part
    unlisted = [
        _relative(dataset, dataset.samples[i][0]) for i in range(len(dataset)) if i not in which
    ]
    if unlisted:
        raise ValueError(
            f"{len(unlisted)} image(s) of {dataset.root} are in no split: {_first(unlisted)}"
        )
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "class", "split"])
        for i, (file, label) in enumerate(dataset.samples):
            writer.writerow([_relative(dataset, file), dataset.classes[label], which[i]])


def _first(names: list[str], n: int = 3) -> str:
    return ", ".join(names[:n]) + (", ..." if len(names) > n else "")


def load_split(path: str | Path, dataset: ImageFolderDataset) -> dict[str, np.ndarray]:
    """Read a ``save_split`` CSV back into dataset indices per split, or raise naming the problem.

    Files are matched by their path relative to ``dataset.root``. Listed files that are gone or
    changed class, and images the CSV does not list, are errors: a photo added later must be
    given a split on purpose, never fall silently into training (or into the test set).
    """
    path = Path(path)
    index = {_relative(dataset, file): i for i, (file, _) in enumerate(dataset.samples)}
    split: dict[str, list[int]] = {}
    gone, moved, twice, seen = [], [], [], set()
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames != ["file", "class", "split"]:
            raise ValueError(
                f"{path}: expected the header file,class,split, not {reader.fieldnames}"
            )
        for row in reader:
            file = row["file"]
            if file not in index or file in seen:
                (gone if file not in index else twice).append(file)
                continue
            seen.add(file)
            now = dataset.classes[dataset.samples[index[file]][1]]
            if now != row["class"]:
                moved.append(f"{file} (was {row['class']}, now {now})")
            split.setdefault(row["split"], []).append(index[file])
    new = [file for file in index if file not in seen]
    problems = [
        f"{len(names)} {what}: {_first(names)}"
        for what, names in [
            ("listed file(s) not in the dataset (renamed, deleted or unreadable?)", gone),
            ("file(s) changed class", moved),
            ("file(s) listed twice", twice),
            ("image(s) in no split (added later?)", new),
        ]
        if names
    ]
    if problems:
        raise ValueError(
            f"{path} does not match the images in {dataset.root}: "
            + "; ".join(problems)
            + ". Make a new split, or edit the CSV on purpose."
        )
    return {part: np.sort(np.array(idx, dtype=np.int64)) for part, idx in split.items()}


def class_weights(targets: Sequence[int] | np.ndarray, num_classes: int) -> torch.Tensor:
    """Per-class loss weights ``n_samples / (num_classes * count)`` ("balanced" in scikit-learn).

    A rare class gets a large weight, so its mistakes count as much in total as those of a
    common class. Pass the *training* targets only. A class without examples cannot be
    weighted (and cannot be learned): that is an error naming its index.
    """
    targets = np.asarray(targets)
    if targets.size and (targets.min() < 0 or targets.max() >= num_classes):
        raise ValueError(
            f"targets must be in 0..{num_classes - 1}, got {targets.min()}..{targets.max()}"
        )
    empty = np.flatnonzero(np.bincount(targets, minlength=num_classes) == 0)
    if len(empty):
        raise ValueError(f"class index {int(empty[0])} has no examples in targets")
    weights = compute_class_weight("balanced", classes=np.arange(num_classes), y=targets)
    return torch.tensor(weights, dtype=torch.float32)


def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith((".", "__MACOSX")))


def extract_upload(zip_path: str | Path, dest: str | Path) -> Path:
    """Unpack an uploaded zip into ``dest``; return the folder that holds the class folders.

    Zip members are checked before anything is written: a member whose path leaves ``dest``
    (``../../.bashrc``, "zip slip") is refused, not quietly rewritten. ``__MACOSX/`` (macOS
    resource forks) is skipped. A single wrapping folder (``photos/cats/...``) is unwrapped.
    """
    zip_path, dest = Path(zip_path), Path(dest)
    try:
        archive = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile as err:
        raise ValueError(f"{zip_path} is not a zip file ({err})") from err
    with archive:
        members = [m for m in archive.infolist() if m.filename.split("/")[0] != "__MACOSX"]
        base = dest.resolve()
        for m in members:
            target = (base / m.filename).resolve()
            if Path(m.filename).is_absolute() or not target.is_relative_to(base):
                raise ValueError(
                    f"{zip_path}: refusing member {m.filename!r}, its path leaves {dest}"
                )
        archive.extractall(dest, members)

    folder = dest
    while True:
        subdirs = [p for p in _visible(folder) if p.is_dir()]
        if len(subdirs) == 1 and any(p.is_dir() for p in _visible(subdirs[0])):
            folder = subdirs[0]  # unwrap photos/ in photos/cats/...
        else:
            break
    classes = [
        d
        for d in _visible(folder)
        if d.is_dir() and any(p.suffix.lower() in IMAGE_EXTENSIONS for p in d.rglob("*"))
    ]
    if not classes:
        found = _first([p.name for p in _visible(folder)], 5) or "nothing"
        raise ValueError(
            f"{zip_path} holds no class folders with images (found: {found}). Zip a folder "
            "laid out as <class>/<image>, e.g. cats/001.jpg and dogs/001.jpg."
        )
    return folder
