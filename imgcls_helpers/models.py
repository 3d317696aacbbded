"""Models the chapters share, and pretrained torchvision models that degrade honestly.

:class:`SmallCNN` is the workhorse for quick experiments on 32x32 images. Chapters that teach
an architecture (the 2-conv network, the ResNet block, patch embedding) write it out in the
notebook first. :func:`pretrained_or_random` loads torchvision weights when it can and says
loudly when it cannot, so an offline run never passes random predictions off as real ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torch import nn

from .config import announce, is_offline


class SmallCNN(nn.Module):
    """Two stages of (conv-BN-ReLU) x 2 + max-pool, global average pooling, a linear head."""

    def __init__(self, num_classes: int, in_channels: int = 3, width: int = 32):
        super().__init__()

        def conv(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        self.features = nn.Sequential(
            *conv(in_channels, width),
            *conv(width, width),
            nn.MaxPool2d(2),
            *conv(width, 2 * width),
            *conv(2 * width, 2 * width),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


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
