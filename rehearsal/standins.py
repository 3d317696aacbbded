"""Write format-exact stand-ins for everything the book downloads, so its real path runs offline.

torchvision tests its own datasets this way: it writes small fake files in each dataset's
exact on-disk layout and lets the real loading code read them. This module does the same
for the book, under one root:

- ``data/cifar-10-batches-py/``: CIFAR-10's pickled batches and ``batches.meta``;
- ``data/flowers-102/``: ``jpg/image_NNNNN.jpg`` at varied sizes and aspect ratios, plus
  ``imagelabels.mat`` and ``setid.mat``;
- ``torch/hub/checkpoints/``: every torchvision weight file the chapters load, under the
  file name torchvision looks for (random weights of the right architecture);
- ``hf/hub/``: the open_clip weights the chapters load, in the Hugging Face cache layout
  that open_clip reads when offline.

Point the chapters at it with ``IMGCLS_DATA=<root>/data``, ``TORCH_HOME=<root>/torch`` and
``HF_HOME=<root>/hf`` (:func:`environment`). The images are not photos: each class has its
own colour and stripe direction, so models can learn something and numbers are not
degenerate, but every number they give is meaningless. Only the download checks (md5) need
bypassing, which ``rehearsal/site/sitecustomize.py`` does from outside the package.

Usage: ``python -m rehearsal.standins ROOT [--cifar-train N] [--cifar-test N]
[--flowers-per-class K]``; full-size CIFAR-10 is ``--cifar-train 50000 --cifar-test 10000``.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

CIFAR10_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip
# (torchvision model, weights enum member) of every pretrained torchvision model the
# chapters load: ResNet-18 (chapters 1 and 10), ResNet-50 (5), ViT-B/16 (8).
TORCHVISION_WEIGHTS = [
    ("resnet18", "DEFAULT"),
    ("resnet50", "DEFAULT"),
    ("vit_b_16", "IMAGENET1K_V1"),
]
# (open_clip model, pretrained tag) the chapters load (9 and 10).
OPEN_CLIP_WEIGHTS = [("ViT-B-32-quickgelu", "openai")]


def class_images(labels: np.ndarray, height: int, width: int, seed: int) -> np.ndarray:
    """uint8 images (N, H, W, 3): each class has a typical colour and stripe direction.

    Both vary from image to image and overlap between neighbouring classes, and noise,
    brightness and contrast vary too, so a classifier learns something without reaching
    100 %: like real data, there are mistakes to show and curves to draw.
    """
    rng = np.random.default_rng(seed)
    n = len(labels)
    hue = labels / 10.0 + rng.normal(0, 0.06, n)
    colour = 0.5 + 0.4 * np.stack([np.cos(2 * np.pi * (hue + k / 3)) for k in range(3)], 1)
    angle = np.pi * labels / 10.0 + rng.normal(0, 0.25, n)
    frequency = rng.uniform(3, 8, (n, 1, 1))
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    phase = np.cos(angle)[:, None, None] * xx + np.sin(angle)[:, None, None] * yy
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * frequency * phase + rng.uniform(0, 6.3, (n, 1, 1)))
    contrast = rng.uniform(0.2, 0.8, (n, 1, 1, 1))
    pixels = colour[:, None, None, :] * (1 - contrast + contrast * stripes[..., None])
    pixels = pixels * rng.uniform(0.6, 1.2, (n, 1, 1, 1)) + rng.normal(0, 0.15, pixels.shape)
    return (np.clip(pixels, 0, 1) * 255).astype(np.uint8)


def write_cifar10(root: Path, n_train: int, n_test: int, seed: int = 0) -> Path:
    """CIFAR-10 in torchvision's layout: five training batches, a test batch, the meta file.

    Each batch is a pickled dict with ``data`` (uint8, N x 3072, channel-major rows) and
    ``labels``, as in the real archive.
    """
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    train_parts = np.array_split(np.arange(n_train), 5)
    batches = [(f"data_batch_{i + 1}", len(part)) for i, part in enumerate(train_parts)]
    for number, (name, count) in enumerate([*batches, ("test_batch", n_test)]):
        labels = rng.integers(0, 10, count)
        images = class_images(labels, 32, 32, seed + 1 + number)
        entry = {
            "batch_label": f"stand-in {name}",
            "labels": labels.tolist(),
            "data": images.transpose(0, 3, 1, 2).reshape(count, 3072),
            "filenames": [f"standin_{number}_{i}.png" for i in range(count)],
        }
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f, protocol=2)
    meta = {"label_names": CIFAR10_CLASSES, "num_cases_per_batch": 10000, "num_vis": 3072}
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump(meta, f, protocol=2)
    return folder


def write_flowers102(root: Path, per_class: int, seed: int = 0) -> Path:
    """Flowers-102 in torchvision's layout: JPEGs of varied sizes, ``imagelabels.mat``
    (1-based labels) and ``setid.mat`` (1-based image ids of ``trnid``, ``valid``, ``tstid``).

    ``per_class`` images of each of the 102 classes go to each split (the real set has 10
    per class in train and val, and 20 to 238 in test).
    """
    from scipy.io import savemat

    folder = root / "flowers-102"
    (folder / "jpg").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(102), 3 * per_class)  # 0-based here, 1-based on disk
    order = rng.permutation(len(labels))
    labels = labels[order]
    splits = {"trnid": [], "valid": [], "tstid": []}
    seen = np.zeros(102, dtype=int)
    for index, label in enumerate(labels):
        # Real Flowers-102 images are about 500 px on their short side, landscape or portrait.
        short, ratio = rng.integers(480, 560), rng.uniform(1.0, 1.6)
        height, width = (short, int(short * ratio)) if rng.random() < 0.6 else (
            int(short * ratio), short)  # fmt: skip
        image = class_images(np.array([label * 10 / 102]), height, width, seed + index)[0]
        Image.fromarray(image).save(folder / "jpg" / f"image_{index + 1:05d}.jpg", quality=85)
        split = ["trnid", "valid", "tstid"][seen[label] % 3]
        splits[split].append(index + 1)
        seen[label] += 1
    savemat(folder / "imagelabels.mat", {"labels": (labels + 1)[None, :].astype(np.uint8)})
    ids = {key: np.array(value, dtype=np.uint16)[None, :] for key, value in splits.items()}
    savemat(folder / "setid.mat", ids)
    return folder


def write_torchvision_weights(torch_home: Path, wanted=TORCHVISION_WEIGHTS) -> list[Path]:
    """A random state dict of each ``(model, weights)`` in ``wanted``, saved where
    ``torch.hub`` caches the real download: ``hub/checkpoints/<file name of Weights.url>``."""
    import torch
    import torchvision

    folder = torch_home / "hub" / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, member in wanted:
        enum = torchvision.models.get_model_weights(name)
        weights = enum.DEFAULT if member == "DEFAULT" else enum[member]
        path = folder / Path(weights.url).name
        if not path.exists():
            model = torchvision.models.get_model(name, weights=None, num_classes=1000)
            torch.save(model.state_dict(), path)
        written.append(path)
    return written


def write_open_clip_weights(hf_home: Path, wanted=OPEN_CLIP_WEIGHTS) -> list[Path]:
    """Random weights of each ``(model, tag)`` in ``wanted`` in the Hugging Face cache layout
    (``hub/models--ORG--NAME/snapshots/<revision>/open_clip_model.safetensors`` and
    ``refs/main``), which ``huggingface_hub`` resolves without a network when offline."""
    import open_clip
    from open_clip.pretrained import get_pretrained_cfg
    from safetensors.torch import save_file

    written = []
    for model_name, tag in wanted:
        repo = get_pretrained_cfg(model_name, tag)["hf_hub"].strip("/")
        cache = hf_home / "hub" / ("models--" + repo.replace("/", "--"))
        revision = hashlib.sha1(repo.encode()).hexdigest()
        path = cache / "snapshots" / revision / "open_clip_model.safetensors"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            logging.disable(logging.WARNING)  # open_clip's "initialized randomly": we know
            try:
                model = open_clip.create_model(model_name, pretrained=None)
            finally:
                logging.disable(logging.NOTSET)
            state = {k: v.detach().half().contiguous() for k, v in model.state_dict().items()}
            save_file(state, path)
        (cache / "refs").mkdir(parents=True, exist_ok=True)
        (cache / "refs" / "main").write_text(revision)
        written.append(path)
    return written


def environment(root: Path) -> dict[str, str]:
    """The variables that point the book's chapters at the stand-ins under ``root``."""
    root = Path(root).resolve()
    return {
        "IMGCLS_DATA": str(root / "data"),
        "TORCH_HOME": str(root / "torch"),
        "HF_HOME": str(root / "hf"),
    }


def write_all(root: Path, cifar_train: int, cifar_test: int, flowers_per_class: int) -> None:
    """Every stand-in under ``root``, and ``root/env.sh`` with the variables to export."""
    root = Path(root).resolve()
    write_cifar10(root / "data", cifar_train, cifar_test)
    write_flowers102(root / "data", flowers_per_class)
    write_torchvision_weights(root / "torch")
    write_open_clip_weights(root / "hf")
    lines = [f"export {k}={v}" for k, v in environment(root).items()]
    (root / "env.sh").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--cifar-train", type=int, default=6000)
    parser.add_argument("--cifar-test", type=int, default=1000)
    parser.add_argument("--flowers-per-class", type=int, default=2)
    args = parser.parse_args()
    write_all(args.root, args.cifar_train, args.cifar_test, args.flowers_per_class)
    print(f"stand-ins written under {args.root}; variables in {args.root / 'env.sh'}")


if __name__ == "__main__":
    main()
