"""Residual networks written out, for chapter 4 and the recipes that train them.

Chapter 4 derives these blocks in the notebook first; this module keeps the same code so
later chapters can use it. The blocks follow torchvision's ResNet v1.5 (stride on the 3x3
convolution of a bottleneck). :class:`ResNet` has a CIFAR-style stem (one 3x3 convolution,
no max-pool) because a 32x32 image cannot afford ImageNet's 4x down-sampling at the start.
:func:`deep_net` builds the same stack with or without skip connections, which is how the
chapter measures what the skips are for.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, bn: bool = True) -> list:
    conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=not bn)
    return [conv, nn.BatchNorm2d(cout)] if bn else [conv]


def _shortcut(cin: int, cout: int, stride: int, bn: bool = True) -> nn.Module:
    """Identity when the shape is unchanged, else a 1x1 (strided) projection."""
    if stride == 1 and cin == cout:
        return nn.Identity()
    return nn.Sequential(*_conv_bn(cin, cout, 1, stride, bn))


class BasicBlock(nn.Module):
    """3x3 conv-BN-ReLU, 3x3 conv-BN, add the shortcut, ReLU (ResNet-18/34)."""

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1, bn: bool = True):
        super().__init__()
        out = channels * self.expansion
        self.residual = nn.Sequential(
            *_conv_bn(in_channels, channels, 3, stride, bn),
            nn.ReLU(inplace=True),
            *_conv_bn(channels, out, 3, 1, bn),
        )
        self.shortcut = _shortcut(in_channels, out, stride, bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.residual(x) + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carries the stride), 1x1 expand by 4, add the shortcut, ReLU
    (ResNet-50/101/152). The 1x1s keep the expensive 3x3 at a quarter of the width."""

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1, bn: bool = True):
        super().__init__()
        out = channels * self.expansion
        self.residual = nn.Sequential(
            *_conv_bn(in_channels, channels, 1, 1, bn),
            nn.ReLU(inplace=True),
            *_conv_bn(channels, channels, 3, stride, bn),
            nn.ReLU(inplace=True),
            *_conv_bn(channels, out, 1, 1, bn),
        )
        self.shortcut = _shortcut(in_channels, out, stride, bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.residual(x) + self.shortcut(x))


class ResNet(nn.Module):
    """A ResNet for small images: 3x3 stem, stages of blocks (each stage after the first
    halves the resolution and doubles the width), global average pooling, a linear head."""

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        blocks_per_stage: tuple[int, ...],
        num_classes: int,
        *,
        width: int = 64,
        in_channels: int = 3,
    ):
        super().__init__()
        self.stem = nn.Sequential(*_conv_bn(in_channels, width, 3), nn.ReLU(inplace=True))
        stages, cin = [], width
        for i, n_blocks in enumerate(blocks_per_stage):
            channels = width * 2**i
            for j in range(n_blocks):
                stride = 2 if i > 0 and j == 0 else 1
                stages.append(block(cin, channels, stride))
                cin = channels * block.expansion
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


def resnet18_cifar(num_classes: int = 10) -> ResNet:
    """ResNet-18's blocks and widths (11.2M parameters) with the small-image stem."""
    return ResNet(BasicBlock, (2, 2, 2, 2), num_classes, width=64)


def small_resnet(num_classes: int, *, width: int = 16, blocks_per_stage=(1, 1, 1)) -> ResNet:
    """A ResNet small enough to train on a CPU in seconds (about 78k parameters by default)."""
    return ResNet(BasicBlock, tuple(blocks_per_stage), num_classes, width=width)


class _PlainBlock(nn.Module):
    """A BasicBlock's two convolutions without the skip connection."""

    def __init__(self, channels: int, bn: bool):
        super().__init__()
        self.body = BasicBlock(channels, channels, bn=bn).residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x))


class _ResidualBlock(_PlainBlock):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + x)


def deep_net(
    num_classes: int,
    *,
    blocks: int,
    residual: bool,
    width: int = 16,
    in_channels: int = 3,
    batch_norm: bool = True,
) -> nn.Sequential:
    """``2 * blocks + 2`` weight layers at one width, with or without skip connections.

    Everything but the skips is identical (same layers, same initialisation given the same
    seed), so a difference in training is the skips' doing.
    """
    block = _ResidualBlock if residual else _PlainBlock
    return nn.Sequential(
        *_conv_bn(in_channels, width, 3, 2, batch_norm),  # stride 2: cheaper on CPU
        nn.ReLU(inplace=True),
        *[block(width, batch_norm) for _ in range(blocks)],
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(width, num_classes),
    )
