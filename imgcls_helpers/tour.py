"""Facts about famous architectures that need no download, for chapter 4's tour.

Parameters and FLOPs are *measured*: the model is built on PyTorch's ``meta`` device (shapes
only, no memory, no initialisation cost) and one forward pass is counted by
``torch.utils.flop_counter.FlopCounterMode``. Published ImageNet accuracy and GFLOPS are *read*
from torchvision's weights metadata, which ships inside torchvision, so this works offline.

A note on units: ``FlopCounterMode`` counts a multiply-add as 2 FLOPs. torchvision's ``_ops``
(like most papers' "FLOPs") counts it as 1, i.e. it is really GMACs. :func:`measure` returns
both so the two can be compared honestly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

# (torchvision name, label, year of the paper). LeNet has no torchvision model: the chapter
# measures its own LeNet-style network instead.
TOUR = (
    ("alexnet", "AlexNet", 2012),
    ("vgg16", "VGG-16", 2014),
    ("googlenet", "GoogLeNet", 2014),
    ("resnet50", "ResNet-50", 2015),
    ("densenet121", "DenseNet-121", 2016),
    ("mobilenet_v3_large", "MobileNetV3-Large", 2019),
    ("efficientnet_b0", "EfficientNet-B0", 2019),
    ("efficientnet_b4", "EfficientNet-B4", 2019),
    ("vit_b_16", "ViT-B/16", 2020),
    ("convnext_tiny", "ConvNeXt-T", 2022),
)

# Options that give the inference-time model: GoogLeNet's auxiliary heads only exist for
# training (they add 6.4M parameters that are never used at test time).
_BUILD_OPTIONS = {"googlenet": {"aux_logits": False, "init_weights": False}}


@dataclass
class Measured:
    """What :func:`measure` counted for one model: its parameters and its FLOPs per image."""

    params: int
    flops: int  # multiply-add = 2 FLOPs, one image

    @property
    def macs(self) -> int:
        return self.flops // 2


def measure(build: Callable[[], nn.Module], input_shape: tuple[int, ...]) -> Measured:
    """Count parameters and FLOPs of the model ``build()`` makes, for one input of
    ``input_shape`` (without the batch dimension), on the meta device."""
    with torch.device("meta"):
        model = build().eval()
        x = torch.empty((1, *input_shape))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return Measured(sum(p.numel() for p in model.parameters()), counter.get_total_flops())


@dataclass
class ArchitectureFacts:
    """One row of chapter 4's tour of architectures: the model's measured size and cost next
    to what torchvision publishes for its pretrained weights (so the two can be checked)."""

    name: str
    year: int
    input_size: int  # the evaluation crop of the published weights
    params: int
    gflops: float  # measured, multiply-add = 2
    published_gflops: float  # torchvision's _ops (multiply-add = 1)
    top1: float  # published ImageNet-1K accuracy of the weights, %
    top5: float
    weights: str


def architecture_facts(name: str, label: str | None = None, year: int = 0) -> ArchitectureFacts:
    """Measured size and cost of torchvision model ``name``, with its DEFAULT weights'
    published ImageNet accuracy, at the resolution those weights are evaluated at."""
    weights = torchvision.models.get_model_weights(name).DEFAULT
    size = weights.transforms().crop_size[0]
    options = _BUILD_OPTIONS.get(name, {})
    measured = measure(
        lambda: torchvision.models.get_model(name, weights=None, **options), (3, size, size)
    )
    imagenet = weights.meta["_metrics"]["ImageNet-1K"]
    return ArchitectureFacts(
        label or name,
        year,
        size,
        measured.params,
        measured.flops / 1e9,
        weights.meta["_ops"],
        imagenet["acc@1"],
        imagenet["acc@5"],
        str(weights),
    )
