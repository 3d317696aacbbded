"""Models the chapters share, and pretrained torchvision models that degrade honestly.

:class:`SmallCNN` is the workhorse for quick experiments on 32x32 images; :class:`TwoConvNet`
is chapter 3's first network. Chapters that teach an architecture (the 2-conv network, the
ResNet block, patch embedding) write it out in the notebook first; the ResNet pieces live in
:mod:`imgcls_helpers.resnet` and are re-exported here. :func:`layer_shapes` lists what each
layer outputs. :func:`pretrained_or_random` loads torchvision weights when it can and says
loudly when it cannot, so an offline run never passes random predictions off as real ones.
The transfer-learning tools of :mod:`imgcls_helpers.transfer` (``backbone`` with a new head,
``freeze``/``unfreeze`` by layer group, ``discriminative_param_groups``) are re-exported here,
and so is chapter 8's small Vision Transformer, :class:`~imgcls_helpers.vit.SmallViT`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torch import nn

from .config import announce, is_offline
from .resnet import (  # noqa: F401  (public API: chapters use models.BasicBlock etc.)
    BasicBlock,
    Bottleneck,
    ResNet,
    conv_bn_relu,
    deep_net,
    resnet18_cifar,
    small_resnet,
)


class SmallCNN(nn.Module):
    """Two stages of (conv-BN-ReLU) x 2 + max-pool, global average pooling, a linear head."""

    def __init__(self, num_classes: int, in_channels: int = 3, width: int = 32):
        super().__init__()

        self.features = nn.Sequential(
            *conv_bn_relu(in_channels, width),
            *conv_bn_relu(width, width),
            nn.MaxPool2d(2),
            *conv_bn_relu(width, 2 * width),
            *conv_bn_relu(2 * width, 2 * width),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class TwoConvNet(nn.Module):
    """Two 5x5 convolutions with max-pooling, then three fully connected layers.

    The classic first CNN (LeNet-5's layout, in colour, as in PyTorch's CIFAR-10 tutorial):
    32x32 -> conv 28x28 -> pool 14x14 -> conv 10x10 -> pool 5x5 -> 16*5*5 = 400 features.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


def layer_shapes(model: nn.Module, input_shape: tuple[int, ...]) -> list[tuple[str, str, tuple]]:
    """``(name, layer type, output shape)`` for every leaf module, in the order they ran.

    It runs one forward pass of zeros with forward hooks, so it reports what really happens
    (including a layer used twice, such as a shared pooling layer) rather than what the
    constructor suggests.
    """
    rows, handles = [], []
    for name, module in model.named_modules():
        if not list(module.children()):
            hook = module.register_forward_hook(
                lambda mod, _inp, out, name=name: rows.append(
                    (name, type(mod).__name__, tuple(out.shape))
                )
            )
            handles.append(hook)
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        with torch.no_grad():
            model(torch.zeros(input_shape, device=device))
    finally:
        for hook in handles:
            hook.remove()
        model.train(was_training)
    return rows


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (only those with ``requires_grad`` if ``trainable_only``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@dataclass
class LoadedModel:
    """A torchvision model plus what the reader must know about its weights."""

    model: nn.Module
    pretrained: bool
    weights: torchvision.models.WeightsEnum  # its metadata is there even when offline
    note: str

    @property
    def categories(self) -> list[str]:
        return list(self.weights.meta["categories"])


def pretrained_or_random(name: str, weights: str = "DEFAULT") -> LoadedModel:
    """Build torchvision model ``name`` with ``weights``, or with random weights if they can't
    be had (offline profile and not cached, or the download failed), announced loudly.

    The weights' metadata (class names, preprocessing, published accuracy) ships inside
    torchvision, so it is available either way.
    """
    builder = torchvision.models.get_model_builder(name)
    enum = torchvision.models.get_model_weights(name)
    chosen = enum.DEFAULT if weights == "DEFAULT" else enum[weights]
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(chosen.url).name
    if cached.exists() or not is_offline():
        try:
            model = builder(weights=chosen)
            return LoadedModel(model, True, chosen, f"{name} with pretrained {chosen}")
        except Exception as err:  # noqa: BLE001  network, SSL, HTTP or corrupt-file errors
            why, reason = "loading failed", f"loading them failed ({type(err).__name__}: {err})"
    else:
        why, reason = "offline", f"this profile is offline and they are not cached at {cached}"
    announce(
        f"RANDOM WEIGHTS: the pretrained weights {chosen} for {name} are not available: "
        f"{reason}. The model below is randomly initialised, so its predictions are chance. "
        "Run with internet (e.g. in Colab) to see the real thing."
    )
    return LoadedModel(builder(weights=None), False, chosen, f"{name} with RANDOM weights ({why})")


# Transfer learning (chapter 5); imported last because transfer.py uses LoadedModel from here.
from .transfer import (  # noqa: E402, F401
    backbone,
    discriminative_param_groups,
    freeze,
    layer_groups,
    replace_head,
    trainable_groups,
    unfreeze,
)

# The Vision Transformer (chapter 8): the model lives in vit.py with its attention tools.
from .vit import SmallViT  # noqa: E402, F401
