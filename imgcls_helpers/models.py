"""Small convolutional networks and tools to look inside any model.

:class:`TwoConvNet` is chapter 3's first network; :func:`conv_bn_relu` is the unit of
:class:`SmallCNN` (the tests' quick model) and of chapter 9's :class:`TinyCLIP` image encoder.
Chapters that teach an architecture (the 2-conv network, the ResNet block, patch embedding)
write it out in the notebook first. The ResNets live in :mod:`imgcls_helpers.resnet`, the
ViT in :mod:`imgcls_helpers.vit`, pretrained torchvision models in
:mod:`imgcls_helpers.transfer`. :func:`layer_shapes` lists what each layer outputs;
:func:`evaluating` runs a model in evaluation mode and puts its mode back.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


def conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    """3x3 convolution (no bias: BN follows), BatchNorm, ReLU: the unit of the small CNNs."""
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


def device_of(model: nn.Module) -> torch.device:
    """The device of the model's first parameter; the CPU for a model without parameters."""
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """``with evaluating(model):`` runs the body in evaluation mode (dropout off, BatchNorm
    with its stored statistics), then puts the model's mode back, even if the body raises.

    Gradients are the caller's choice: add ``torch.no_grad()`` when none are needed.
    """
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


class SmallCNN(nn.Module):
    """Two stages of (conv-BN-ReLU) x 2 + max-pool, global average pooling, a linear head.

    Small and quick to train: the tests' model for anything that needs a real CNN.
    """

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
    try:
        with evaluating(model), torch.no_grad():
            model(torch.zeros(input_shape, device=next(model.parameters()).device))
    finally:
        for hook in handles:
            hook.remove()
    return rows


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (only those with ``requires_grad`` if ``trainable_only``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
