"""TensorLoader against a DataLoader of PIL images: images per second over a full epoch.

Why: chapters 3 to 10 train from :class:`imgcls_helpers.data.TensorLoader` (the uint8 images
held in memory, each batch an index and one multiply-add) instead of the DataLoader with PIL
images and transforms that chapter 1 teaches. This measures what that choice buys at the
batch sizes the chapters use. The DataLoader's dataset reads images as torchvision's CIFAR10
does (a uint8 array, ``Image.fromarray`` per item), so it pays what the real dataset pays;
its workers are persistent, as in chapters 5 and 8, so worker start-up is not counted.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from imgcls_helpers.data import CIFAR10_MEAN, CIFAR10_STD, TensorLoader

from .timing import interleaved, medians, parser, write_results


class PILImages(Dataset):
    """CIFAR10's ``__getitem__``: a uint8 (H, W, 3) array -> PIL image -> ``transform``."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        return self.transform(Image.fromarray(self.images[index])), int(self.labels[index])


def epoch(loader) -> None:
    """One full pass, the batches only fetched (that is all a loader is asked for)."""
    for _ in loader:
        pass


def main(argv: list[str] | None = None) -> dict:
    """Time every loader in turn, batch size by batch size, and write the results."""
    options = parser(__doc__)
    options.add_argument("--images", type=int, default=5000)
    options.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 512])
    options.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    args = options.parse_args(argv)
    if args.quick:
        args.images, args.batch_sizes, args.workers = 512, [128], [0, 2]
    repeats = args.repeats or (2 if args.quick else 5)

    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.images, 32, 32, 3), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (args.images,), generator=generator)
    to_tensor = v2.Compose(
        [
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(CIFAR10_MEAN, CIFAR10_STD),
        ]
    )
    dataset = PILImages(images.numpy(), labels.numpy(), to_tensor)

    loaders: dict[str, tuple[int, int, object]] = {}
    for size in args.batch_sizes:
        tensors = TensorLoader(
            images,
            labels,
            batch_size=size,
            shuffle=True,
            device="cpu",
            mean=CIFAR10_MEAN,
            std=CIFAR10_STD,
        )
        loaders[f"TensorLoader bs={size}"] = (size, 0, tensors)
        for workers in args.workers:
            pil = DataLoader(
                dataset,
                batch_size=size,
                shuffle=True,
                num_workers=workers,
                persistent_workers=workers > 0,
            )
            loaders[f"DataLoader bs={size} workers={workers}"] = (size, workers, pil)
    cases = {name: partial(epoch, loader) for name, (_, _, loader) in loaders.items()}
    seconds = interleaved(cases, repeats)
    median = medians(seconds)

    rows, summary = [], {}
    for name, (size, workers, _) in loaders.items():
        rate = args.images / median[name]
        tensor_rate = args.images / median[f"TensorLoader bs={size}"]
        row = {"loader": name.split()[0], "batch_size": size, "workers": workers}
        row |= {"median_s": median[name], "images_per_s": rate}
        rows.append(row | {"TensorLoader_speedup": tensor_rate / rate})
        if name.startswith("DataLoader"):
            summary[f"TensorLoader / DataLoader, bs={size}, workers={workers}"] = tensor_rate / rate
    notes = [
        "TensorLoader_speedup: the TensorLoader's images/s at the same batch size divided by "
        "this loader's; above 1 means the TensorLoader is faster.",
        "All on the CPU; on a GPU the TensorLoader also skips the host-to-device copy.",
    ]
    settings = {"images": args.images, "repeats": repeats, "quick": args.quick}
    write_results(
        "loaders",
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
