"""Datasets, transforms and loaders used by every chapter.

Real data (CIFAR-10, Flowers-102) comes through torchvision. When it cannot be had, because
this is the ``smoke`` profile or the download failed, :func:`load_dataset` says so loudly and
returns the offline "shapes" set instead, so a chapter always runs and never pretends.
Every dataset yields ``(PIL image, label)`` and has ``.classes``, so one transform fits all.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2

from .config import announce, data_dir, get_device, is_offline, pick
from .synthetic import ShapesDataset, make_shapes

# Channel statistics of ImageNet's training set: every torchvision/timm pretrained model
# expects inputs normalised with them.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# CIFAR-10's own training-set statistics, for models trained from scratch on it.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


def train_transforms(
    size: int = 224,
    *,
    scale: tuple[float, float] = (0.08, 1.0),
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
) -> v2.Compose:
    """Random crop of a random part of the image, random flip, then tensor + normalise."""
    return v2.Compose(
        [
            v2.ToImage(),
            v2.RandomResizedCrop(size, scale=scale, antialias=True),
            v2.RandomHorizontalFlip(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean, std),
        ]
    )


def eval_transforms(
    size: int = 224, *, resize: int | None = None, mean=IMAGENET_MEAN, std=IMAGENET_STD
) -> v2.Compose:
    """Deterministic: resize the short side (to size / 0.875 by default), centre crop, normalise."""
    return v2.Compose(
        [
            v2.ToImage(),
            v2.Resize(resize or round(size / 0.875), antialias=True),
            v2.CenterCrop(size),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean, std),
        ]
    )


def denormalize(images: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """Undo ``Normalize`` for display: ``x * std + mean`` on a (C,H,W) or (N,C,H,W) tensor."""
    shape = (-1, 1, 1)
    mean_t = torch.as_tensor(mean, dtype=images.dtype, device=images.device).view(shape)
    std_t = torch.as_tensor(std, dtype=images.dtype, device=images.device).view(shape)
    return images * std_t + mean_t


def sample_image(name: str = "chelsea") -> Image.Image:
    """A real photo shipped inside scikit-image or scikit-learn, so no download is needed.

    scikit-image: ``chelsea`` (a cat), ``astronaut``, ``coffee``, ``rocket``;
    scikit-learn: ``china`` (a temple), ``flower``.
    """
    if name in {"china", "flower"}:
        from sklearn.datasets import load_sample_image

        return Image.fromarray(load_sample_image(f"{name}.jpg"))
    import skimage.data

    if name not in {"chelsea", "astronaut", "coffee", "rocket"}:
        raise ValueError(f"unknown sample image {name!r}")
    return Image.fromarray(getattr(skimage.data, name)())


def load_digits_tensors() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 1,797 handwritten digits: images (N, 1, 8, 8) in [0, 1] and labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    return images, torch.tensor(digits.target, dtype=torch.long)


@dataclass
class Splits:
    """Train, validation and test datasets, their classes, and where they really came from.

    Choose epochs and hyperparameters on ``val``; look at ``test`` once, at the end. The test
    dataset carries ``split == "test"``, which :func:`imgcls_helpers.train.fit` refuses as its
    ``val_loader`` (it picks the best epoch on that loader, which would select on the test set).
    """

    train: torch.utils.data.Dataset
    val: torch.utils.data.Dataset
    test: torch.utils.data.Dataset
    classes: list[str]
    name: str  # what ran, e.g. "CIFAR-10" or "shapes (offline stand-in for CIFAR-10)"
    offline: bool  # True when this is the offline stand-in rather than the requested data

    def __post_init__(self) -> None:
        for role in ("train", "val", "test"):
            mark_split(getattr(self, role), role)


def mark_split(obj, role: str):
    """Label a dataset or loader as the ``"train"``, ``"val"`` or ``"test"`` split; returns it.

    Only a label: it lets :func:`imgcls_helpers.train.fit` refuse the test split as the data it
    selects the best epoch on. :func:`split_of` reads it back.
    """
    if role not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', not {role!r}")
    obj.split = role
    return obj


def split_of(obj) -> str | None:
    """The split label of a loader or dataset, looking through ``.dataset`` (a ``DataLoader``,
    a ``Subset``) to the first object that has one; None when nothing is labelled."""
    for _ in range(8):  # DataLoader -> Subset -> dataset chains are short
        role = getattr(obj, "split", None)
        if role in ("train", "val", "test"):
            return role
        obj = getattr(obj, "dataset", None)
        if obj is None:
            return None
    return None


def shapes_splits(
    n_train: int,
    n_val: int,
    n_test: int,
    *,
    difficulty="medium",
    size=32,
    train_transform=None,
    eval_transform=None,
    seed=0,
) -> Splits:
    """Train, validation and test sets of generated shapes, each drawn from its own seed."""
    train = make_shapes(n_train, size=size, difficulty=difficulty, seed=seed)
    val = make_shapes(n_val, size=size, difficulty=difficulty, seed=seed + 20_000)
    test = make_shapes(n_test, size=size, difficulty=difficulty, seed=seed + 10_000)
    return Splits(
        ShapesDataset(train, train_transform),
        ShapesDataset(val, eval_transform),
        ShapesDataset(test, eval_transform),
        list(train.classes),
        f"shapes ({difficulty}, {n_train} train / {n_val} val / {n_test} test)",
        False,
    )


def stratified_split(labels, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(keep, held_out)``: ``fraction`` of each class held out, drawn with ``seed``.

    scikit-learn's ``train_test_split(stratify=...)``, so every class keeps its share.
    """
    from sklearn.model_selection import train_test_split

    index = np.arange(len(labels))
    keep, held_out = train_test_split(
        index, test_size=fraction, stratify=np.asarray(labels), random_state=seed
    )
    return np.sort(keep), np.sort(held_out)


# CIFAR-10 has no validation split, so part of the training set is held out, as d2l's CIFAR-10
# chapter does (valid_ratio 0.1): 5,000 images, 500 per class.
CIFAR10_VAL_FRACTION = 0.1


def _torchvision_splits(name: str, download: bool, train_transform, eval_transform) -> Splits:
    from torch.utils.data import Subset
    from torchvision import datasets

    root = data_dir()
    if name == "cifar10":
        train = datasets.CIFAR10(root, train=True, transform=train_transform, download=download)
        same = datasets.CIFAR10(root, train=True, transform=eval_transform, download=download)
        test = datasets.CIFAR10(root, train=False, transform=eval_transform, download=download)
        keep, held_out = stratified_split(train.targets, CIFAR10_VAL_FRACTION)
        train_part, val_part = Subset(train, keep.tolist()), Subset(same, held_out.tolist())
        return Splits(train_part, val_part, test, list(train.classes), "CIFAR-10", False)
    if name == "flowers102":

        def split(s, transform):
            return datasets.Flowers102(root, split=s, transform=transform, download=download)

        train, val = split("train", train_transform), split("val", eval_transform)
        test = split("test", eval_transform)
        return Splits(train, val, test, list(test.classes), "Flowers-102", False)
    raise ValueError(f"unknown dataset {name!r}: use 'cifar10', 'flowers102' or 'shapes'")


def load_dataset(name: str, *, train_transform=None, eval_transform=None) -> Splits:
    """CIFAR-10 or Flowers-102 when available, else the shapes set, announced loudly.

    Order: files already in :func:`~imgcls_helpers.config.data_dir` (torchvision checks their
    hashes); then a download unless offline; then the offline stand-in. ``"shapes"`` asks for
    the offline set directly. Stand-in sizes follow the profile. Validation: Flowers-102's own
    split; for CIFAR-10, a stratified 10 % of the training set (the same images every time).
    """
    stand_in_sizes = pick(smoke=(1200, 400, 400), cpu=(6000, 2000, 2000), full=(20000, 4000, 4000))
    if name != "shapes":
        try:
            return _torchvision_splits(name, False, train_transform, eval_transform)
        except (RuntimeError, FileNotFoundError) as missing:  # not downloaded yet
            reason = f"not found in {data_dir()} ({missing})"
        if not is_offline():
            try:
                return _torchvision_splits(name, True, train_transform, eval_transform)
            except Exception as err:  # noqa: BLE001  any network/SSL/HTTP failure
                reason = f"download failed: {type(err).__name__}: {err}"
        else:
            reason += "; this profile is offline, so no download was tried"
        announce(
            f"OFFLINE STAND-IN: {name} is not available ({reason}). Using the generated "
            f"'shapes' dataset instead; numbers below are for shapes, not {name}. To use the "
            f"real data, run with internet and IMGCLS_PROFILE=cpu or full, or place the "
            f"torchvision files for {name} in {data_dir()} (or set IMGCLS_DATA)."
        )
    splits = shapes_splits(
        *stand_in_sizes, train_transform=train_transform, eval_transform=eval_transform
    )
    splits.offline = name != "shapes"
    if splits.offline:
        splits.name += f" (offline stand-in for {name})"
    return splits


def dataset_to_tensors(dataset, size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode a whole (small) dataset once into a uint8 (N, 3, H, W) tensor and labels.

    Images of different sizes are resized (short side) and centre-cropped to ``size``.
    Datasets that already hold a uint8 ``(N, H, W, 3)`` array (CIFAR-10's ``.data``, the
    shapes set's ``.data.images``) are converted in one step instead of image by image, and so
    is a ``Subset`` of one (CIFAR-10's training and validation parts).
    """
    if isinstance(dataset, torch.utils.data.Subset):
        images, labels = dataset_to_tensors(dataset.dataset, size)
        index = torch.as_tensor(dataset.indices, dtype=torch.long)
        return images[index], labels[index]
    array = getattr(dataset, "data", None)
    array = getattr(array, "images", array)
    whole = isinstance(array, np.ndarray) and array.dtype == np.uint8 and array.ndim == 4
    if size is None and whole and array.shape[-1] == 3 and hasattr(dataset, "targets"):
        images = torch.from_numpy(array).permute(0, 3, 1, 2).contiguous()
        return images, torch.as_tensor(dataset.targets, dtype=torch.long)
    to_uint8 = [v2.ToImage()] + ([v2.Resize(size), v2.CenterCrop(size)] if size else [])
    transform = v2.Compose(to_uint8)
    images, labels = [], []
    for i in range(len(dataset)):
        image, label = dataset[i]
        images.append(transform(image))
        labels.append(label)
    return torch.stack(images), torch.tensor(labels, dtype=torch.long)


class TensorLoader:
    """Batches from a dataset held in memory, on the GPU when there is one.

    For small datasets a ``DataLoader`` spends most of its time decoding and copying images.
    Here the uint8 images go to the device once; each batch is an index into them, scaled to
    [0, 1] and normalised on the device, optionally followed by a batched ``augment`` (which
    only runs when ``shuffle`` is on, i.e. for training). No worker processes are needed.

    ``augment`` sees normalised floats and, being one call per batch, suits ops written for
    whole batches (:func:`flip_and_crop`). Photometric ops such as ``v2.TrivialAugmentWide`` or
    ``v2.ColorJitter`` need the raw pixels instead, and a torchvision transform given a batch
    draws ONE random choice for all of it. Two hooks see the raw uint8 pixels, before
    normalisation, and must return the same dtype:

    - ``image_transform`` is called on each ``(C, H, W)`` training image on its own (its own
      random draw): any torchvision transform works, but as a Python loop over the batch,
      which can be slower than a fast GPU trains (there every small op on one image is a
      kernel launch of its own; chapter 6 times the loop);
    - ``pixel_augment`` is called once on the whole ``(N, C, H, W)`` batch, on the device,
      and must itself draw per image: :class:`imgcls_helpers.augment.TrivialAugmentWide` and
      :class:`~imgcls_helpers.augment.RandomErasing` do. Prefer it whenever such a batched
      version exists.

    If both are given, ``image_transform`` runs first. Like ``augment`` they only run with
    ``shuffle=True``, so a test loader stays deterministic.

    Args:
        images: uint8 ``(N, C, H, W)`` (or ``(N, H, W, C)``, transposed here) or float images.
        labels: ``(N,)`` class indices.
        batch_size, shuffle, drop_last: as for ``DataLoader``; ``shuffle`` marks a training
            loader (only then do ``augment``, ``image_transform`` and ``pixel_augment`` run).
        mean, std: per-channel normalisation, applied on the device.
        augment: batched ``(N, C, H, W) -> (N, C, H, W)`` on normalised floats.
        image_transform: per-image ``(C, H, W) -> (C, H, W)`` on the raw pixels.
        pixel_augment: batched ``(N, C, H, W) -> (N, C, H, W)`` on the raw pixels.
        device: where the images live; default :func:`imgcls_helpers.config.get_device`.
        seed: of the shuffling order, so two loaders with one seed yield the same batches.
        split: ``"train"``, ``"val"`` or ``"test"``, a label (:func:`mark_split`) that lets
            :func:`imgcls_helpers.train.fit` refuse a test loader as its ``val_loader``.
    """

    def __init__(
        self,
        images: torch.Tensor | np.ndarray,
        labels: torch.Tensor | np.ndarray,
        *,
        batch_size: int = 128,
        shuffle: bool = False,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
        image_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        pixel_augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
        drop_last: bool = False,
        device: torch.device | str | None = None,
        seed: int = 0,
        split: str | None = None,
    ):
        if split is not None:
            mark_split(self, split)
        images = torch.as_tensor(images)
        if images.ndim == 4 and images.shape[-1] in (1, 3) and images.shape[1] not in (1, 3):
            images = images.permute(0, 3, 1, 2)  # (N, H, W, C) arrays -> (N, C, H, W)
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.device = torch.device(device) if device else get_device()
        self.images = images.contiguous().to(self.device)
        self.labels = torch.as_tensor(labels, dtype=torch.long).to(self.device)
        channels = self.images.shape[1]
        mean_t = torch.tensor(mean[:channels], device=self.device).view(1, -1, 1, 1)
        std_t = torch.tensor(std[:channels], device=self.device).view(1, -1, 1, 1)
        # (x / 255 - mean) / std as one multiply-add: x * scale + shift
        self.scale = 1 / (std_t * (255 if self.images.dtype == torch.uint8 else 1))
        self.shift = -mean_t / std_t
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.augment, self.image_transform = augment, image_transform
        self.pixel_augment = pixel_augment
        self.generator = torch.Generator().manual_seed(seed)
        self.rank, self.world, self.pad = 0, 1, False

    def shard(self, rank: int, world: int, *, pad: bool) -> TensorLoader:
        """This loader for process ``rank`` of ``world`` (``torchrun``): every process walks
        the same order (one seed) and keeps every ``world``-th image, as ``DistributedSampler``
        does. ``pad`` wraps around so that all get the same number of images (training)."""
        part = copy.copy(self)
        part.rank, part.world, part.pad = rank, world, pad
        part.generator = torch.Generator().manual_seed(self.generator.initial_seed())
        return part

    def _size(self) -> int:
        """How many images this process sees per epoch."""
        n = len(self.labels)
        if self.world == 1:
            return n
        return -(-n // self.world) if self.pad else len(range(self.rank, n, self.world))

    def __len__(self) -> int:
        n, b = self._size(), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.labels)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        if self.world > 1:
            if self.pad:
                wanted = self._size() * self.world
                order = order.repeat(-(-wanted // n))[:wanted]
            order = order[self.rank :: self.world]
        order = order.to(self.device)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            index = order[start : start + self.batch_size]
            images = self.images[index]
            if self.image_transform is not None and self.shuffle:
                images = self._transform_each(images)
            if self.pixel_augment is not None and self.shuffle:
                images = self._augment_pixels(images)
            batch = torch.addcmul(self.shift, images.float(), self.scale)
            if self.augment is not None and self.shuffle:
                batch = self.augment(batch)
            yield batch, self.labels[index]

    def _transform_each(self, images: torch.Tensor) -> torch.Tensor:
        """``image_transform`` on every image of a batch separately, so each gets its own draw."""
        out = torch.stack([self.image_transform(image) for image in images])
        if out.dtype != images.dtype:
            raise TypeError(
                f"image_transform turned {images.dtype} images into {out.dtype}; it must keep "
                f"the dtype, because the loader scales and normalises afterwards (leave out "
                f"ToDtype and Normalize)"
            )
        return out

    def _augment_pixels(self, images: torch.Tensor) -> torch.Tensor:
        """``pixel_augment`` on the whole raw batch, once."""
        out = self.pixel_augment(images)
        if out.dtype != images.dtype:
            raise TypeError(
                f"pixel_augment turned {images.dtype} images into {out.dtype}; it must keep "
                f"the dtype, because the loader scales and normalises afterwards (leave out "
                f"ToDtype and Normalize)"
            )
        return out


def random_flip(batch: torch.Tensor) -> torch.Tensor:
    """Flip a random half of a batch left-right, on whatever device the batch is on."""
    flip = torch.rand(len(batch), device=batch.device) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), batch.flip(-1), batch)


def random_crop(batch: torch.Tensor, padding: int = 4) -> torch.Tensor:
    """Shift each image of a batch by up to ``padding`` pixels (pad by reflection, crop back
    to the original size at a random offset per image): ``RandomCrop(32, padding=4)`` for a
    whole batch at once, on whatever device the batch is on."""
    n, c, h, w = batch.shape
    padded = torch.nn.functional.pad(batch, (padding,) * 4, mode="reflect")
    dy, dx = (torch.randint(0, 2 * padding + 1, (2, n, 1), device=batch.device)).unbind(0)
    rows = (dy + torch.arange(h, device=batch.device)).view(n, 1, h, 1)
    cols = (dx + torch.arange(w, device=batch.device)).view(n, 1, 1, w)
    images = torch.arange(n, device=batch.device).view(n, 1, 1, 1)
    channels = torch.arange(c, device=batch.device).view(1, c, 1, 1)
    return padded[images, channels, rows, cols]


def flip_and_crop(batch: torch.Tensor) -> torch.Tensor:
    """The standard CIFAR augmentation: random horizontal flip, then a random 4-pixel shift."""
    return random_crop(random_flip(batch), padding=4)
