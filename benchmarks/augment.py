"""TrivialAugmentWide + RandomErasing per image or batched: can it feed a GPU?

Why: chapter 6's strong augmentation used to pass ``image_transform=v2.Compose([
TrivialAugmentWide(), RandomErasing(p=0.25, value=mean colour)])`` to a TensorLoader, which
calls it on every uint8 (3, 32, 32) training image separately, in the training process. A
DataLoader spreads the same per-image work over worker processes. Chapter 6 now uses
``imgcls_helpers.augment`` through ``pixel_augment=``: the same operations, one draw per
image, run once per batch on the batch's device. This measures images per second of the
four, against the images per second a GPU would consume.
"""

from __future__ import annotations

from functools import partial

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from imgcls_helpers import augment
from imgcls_helpers.data import CIFAR10_MEAN, CIFAR10_STD, TensorLoader

from .timing import interleaved, medians, parser, write_results

# ASSUMPTIONS, not measured here: roughly what ResNet-18 training on CIFAR-sized images
# consumes with mixed precision. The verdict compares each loader against these.
GPU_IMAGES_PER_S = {"Colab T4, AMP": 5_000, "A100": 25_000}


class AugmentedTensors(Dataset):
    """One uint8 (3, H, W) image at a time through ``transform``, as a DataLoader worker does."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        return self.transform(self.images[index]), self.labels[index]


def epoch(loader) -> None:
    """One full pass, the batches only fetched."""
    for _ in loader:
        pass


def main(argv: list[str] | None = None) -> dict:
    """Time the three loaders in turn and write the results with the verdicts."""
    options = parser(__doc__)
    options.add_argument("--images", type=int, default=2000)
    options.add_argument("--batch-size", type=int, default=128)
    options.add_argument("--workers", type=int, default=2)
    args = options.parse_args(argv)
    if args.quick:
        args.images = 256
    repeats = args.repeats or (2 if args.quick else 5)

    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.images, 3, 32, 32), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (args.images,), generator=generator)
    mean_colour = [round(255 * m) for m in CIFAR10_MEAN]  # chapter 6: 0 after normalisation
    strong = v2.Compose([v2.TrivialAugmentWide(), v2.RandomErasing(p=0.25, value=mean_colour)])
    batched = v2.Compose(
        [augment.TrivialAugmentWide(), augment.RandomErasing(p=0.25, value=mean_colour)]
    )
    normalise = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(CIFAR10_MEAN, CIFAR10_STD)]
    tensor_options = {
        "batch_size": args.batch_size,
        "shuffle": True,
        "device": "cpu",
        "mean": CIFAR10_MEAN,
        "std": CIFAR10_STD,
    }
    loaders = {
        "TensorLoader + per-image transform": TensorLoader(
            images, labels, image_transform=strong, **tensor_options
        ),
        "TensorLoader, no transform": TensorLoader(images, labels, **tensor_options),
        "TensorLoader + batched (pixel_augment, chapter 6)": TensorLoader(
            images, labels, pixel_augment=batched, **tensor_options
        ),
        f"DataLoader, {args.workers} workers + per-image transform": DataLoader(
            AugmentedTensors(images, labels, v2.Compose([strong, *normalise])),
            batch_size=args.batch_size,
            shuffle=True,
            num_workers=args.workers,
            persistent_workers=args.workers > 0,
        ),
    }
    seconds = interleaved(
        {name: partial(epoch, loader) for name, loader in loaders.items()}, repeats
    )
    median = medians(seconds)

    rows = []
    for name, s in median.items():
        rate = args.images / s
        row = {"loader": name, "images_per_s": rate}
        for gpu, need in GPU_IMAGES_PER_S.items():
            verdict = "would starve" if rate < need else "keeps up"
            row[f"vs {gpu} ({need:,} img/s, assumed)"] = f"{rate / need:.2f}x: {verdict}"
        rows.append(row)
    augmented = args.images / median["TensorLoader + per-image transform"]
    summary = {
        "TensorLoader + per-image transform, images/s": augmented,
        "slow-down of the TensorLoader from the transform": (
            median["TensorLoader + per-image transform"] / median["TensorLoader, no transform"]
        ),
        "DataLoader images/s / TensorLoader images/s, both with the transform": (
            median["TensorLoader + per-image transform"] / median[list(median)[3]]
        ),
        "batched / per-image, images/s": (
            median["TensorLoader + per-image transform"]
            / median["TensorLoader + batched (pixel_augment, chapter 6)"]
        ),
    }
    fast = args.images / median["TensorLoader + batched (pixel_augment, chapter 6)"]
    for gpu, need in GPU_IMAGES_PER_S.items():
        summary[f"verdict vs {gpu} (assumed {need:,} img/s)"] = (
            "would starve" if augmented < need else "keeps up"
        )
        summary[f"batched: verdict vs {gpu} (assumed {need:,} img/s)"] = (
            "would starve" if fast < need else "keeps up"
        )
    notes = [
        "The GPU rates are ASSUMPTIONS (ResNet-18 on CIFAR-sized images: 5,000 img/s on a "
        "Colab T4 with AMP, 25,000 img/s on an A100), not measured here.",
        "Measured on this machine's CPU with the images on the CPU. On a GPU machine the "
        "TensorLoader keeps its images on the GPU, so the per-image transform runs on GPU "
        "tensors one 3x32x32 image at a time, where each op is a kernel launch: not measured.",
        "The TensorLoader's per-image work runs in the training process, on one core, whatever "
        "the machine has; the DataLoader's scales with its workers (a Colab T4 has 2 vCPUs).",
        "The batched version runs its operations on the batch's device: here the CPU. On a GPU "
        "each operation is a handful of kernels per batch instead of per image: not measured.",
    ]
    settings = {
        "images": args.images,
        "batch_size": args.batch_size,
        "workers": args.workers,
        "repeats": repeats,
        "quick": args.quick,
    }
    write_results(
        "augment",
        settings=settings,
        rows=rows,
        summary=summary,
        seconds=seconds,
        notes=notes,
        out=args.out,
    )
    return summary


if __name__ == "__main__":
    main()
