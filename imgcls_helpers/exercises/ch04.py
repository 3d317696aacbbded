"""Chapter 4, the ResNet block and a tour of architectures: the judges of its exercises."""

from __future__ import annotations

import copy
import functools
import hashlib

import numpy as np
import torch
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .. import config, resnet
from ..labs import PARAMETER_COUNTERS, Exercise, close, is_integer


def _n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _bottleneck(context, block):
    if isinstance(block, torch.Tensor):
        return "store the block itself (the nn.Module), not a tensor: the check runs it"
    if not isinstance(block, nn.Module):
        return "block_ex1 must be a block: an instance of the Bottleneck class of section 4.3"
    if type(block).__name__ != "Bottleneck":
        return "build it from the Bottleneck class of section 4.3"
    candidate = copy.deepcopy(block).eval()  # the student's block stays as it is
    x = torch.randn(2, 256, 16, 16, generator=torch.Generator().manual_seed(0))
    try:
        with torch.no_grad():
            out = candidate(x)
    except RuntimeError:
        return "the block must accept 256 input channels: check its first argument"
    if out.shape[1] != 512:
        return "the output has channels * expansion channels, and expansion is 4"
    if tuple(out.shape) != (2, 512, 8, 8):
        return "the output must be half as high and wide as the input: which argument does that?"
    reference = resnet.Bottleneck(256, 128, stride=2).eval()
    if _n_params(candidate) != _n_params(reference):
        return "right output shape, but not the parameters of that bottleneck block"
    # Copy its tensors, in order, into the helper's block: the same function if the same block.
    target = reference.state_dict()
    values = list(candidate.state_dict().values())
    if len(values) != len(target) or any(
        v.shape != t.shape for v, t in zip(values, target.values(), strict=False)
    ):
        return "its layers differ from the bottleneck of section 4.3"
    reference.load_state_dict(dict(zip(target, values, strict=True)))
    with torch.no_grad():
        if not torch.allclose(candidate(x), reference(x), atol=1e-5):
            return "it does not compute what the bottleneck of section 4.3 computes"
    return None


def _basic_block_params(context, n_params):
    if not is_integer(n_params):
        return "give a whole number (an int)"
    expected = _n_params(resnet.BasicBlock(64, 128, stride=2))
    n = int(n_params)
    projection = 64 * 128 + 2 * 128
    if n == expected - projection:
        return "the block changes the shape, so its shortcut is a projection: count it too"
    if n == expected + 3 * 2 * 128:
        return "a BN layer's running mean and variance are buffers, not parameters"
    if n == expected - 3 * 2 * 128:
        return "each BN layer has two parameters per channel: a scale and a shift"
    if n == expected + 3 * 128:
        return "the convolutions have no bias (bias=False)"
    if n != expected:
        return "add the weights of the three convolutions and the scales and shifts of three BNs"
    return None


_CLASSES = {"BasicBlock": resnet.BasicBlock, "Bottleneck": resnet.Bottleneck}


def _projections(context, needs_projection):
    blocks = context["blocks_ex3"]
    if not isinstance(needs_projection, list | tuple) or not all(
        isinstance(v, bool | np.bool_) for v in needs_projection
    ):
        return "give a list of True/False values, one per block"
    if len(needs_projection) != len(blocks):
        return f"give one True/False value for each of the {len(blocks)} blocks"
    truth = [
        not isinstance(_CLASSES[cls.__name__](cin, ch, stride).shortcut, nn.Identity)
        for cls, cin, ch, stride in blocks
    ]
    wrong = [i for i, (a, t) in enumerate(zip(needs_projection, truth, strict=True)) if a != t]
    if not wrong:
        return None
    if all(blocks[i][0].__name__ == "Bottleneck" for i in wrong):
        return "a Bottleneck's output has channels * 4 channels: compare that with its input"
    return "a projection is needed when the stride is not 1 or the number of channels changes"


@functools.cache
def _resnet18_conv_flops() -> tuple[int, int]:
    """The FLOPs (multiply-add = 2) of torchvision ResNet-18's stem convolution and of the
    first 3x3 convolution of layer1, on one 224 x 224 image, counted by PyTorch."""
    with torch.device("meta"):
        model = torchvision.models.resnet18(weights=None).eval()
        x = torch.empty(1, 3, 224, 224)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    counts = counter.get_flop_counts()
    return (
        sum(counts["ResNet.conv1"].values()),
        sum(counts["ResNet.layer1.0.conv1"].values()),
    )


def _conv_flops(side: int, k: int, c_in: int, c_out: int) -> int:
    return 2 * side * side * k * k * c_in * c_out


def _flops(context, stem_flops, layer1_flops):
    stem, layer1 = _resnet18_conv_flops()
    for value in (stem_flops, layer1_flops):
        if not is_integer(value):
            return "give whole numbers of FLOPs (not GFLOPs, not a string)"
    stem_flops, layer1_flops = int(stem_flops), int(layer1_flops)
    if stem_flops * 2 == stem or layer1_flops * 2 == layer1:
        return "that counts multiply-adds: PyTorch counts each one as 2 FLOPs"
    if stem_flops != stem:
        if stem_flops == _conv_flops(224, 7, 3, 64):
            return "stem_flops: with stride 2 the output is half as high and wide as the input"
        return (
            "stem_flops: 2 x out_h x out_w x k x k x c_in x c_out, where the output side is "
            "(224 + 2 x padding - k) // stride + 1"
        )
    if layer1_flops != layer1:
        if layer1_flops == _conv_flops(112, 3, 64, 64):
            return "layer1_flops: between conv1 and layer1 the stem has a max-pool of stride 2"
        return (
            "layer1_flops: first find the side of the feature map that reaches layer1 (follow "
            "the stem), then use the same formula with k = 3 and 64 channels in and out"
        )
    return None


def _tensor_key(*tensors: torch.Tensor) -> str:
    digest = hashlib.sha256()
    for t in tensors:
        digest.update(t.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def train_on_batch(
    net: nn.Module, images: torch.Tensor, labels: torch.Tensor, steps: int = 8
) -> list[float]:
    """Exercise 4.5's measurement: ``steps`` SGD steps (learning rate 0.01, momentum 0.9) on
    one fixed batch, the network in training mode; the loss of each step, before its update.
    The chapter's ``train_on_probe`` is this function on the first 32 probe images."""
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    net.train()
    losses = []
    for _ in range(steps):
        loss = nn.functional.cross_entropy(net(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


_ZERO_INIT_RUNS: dict[str, tuple[list[float], list[float]]] = {}


def _zero_init_runs(images, labels, num_classes: int) -> tuple[list[float], list[float]]:
    """The losses of section 4.5's residual network as built and with the last BN of every
    residual branch started at zero, each trained by :func:`train_on_batch` (cached: the
    runs take a few seconds and depend on the batch only)."""
    key = _tensor_key(images, labels) + str(num_classes)
    if key not in _ZERO_INIT_RUNS:
        runs = []
        for zero_init in (False, True):
            config.seed_everything(0)
            net = resnet.deep_net(num_classes, blocks=10, residual=True)
            if zero_init:
                with torch.no_grad():
                    for module in net.modules():
                        if isinstance(module, resnet._ResidualBlock):
                            module.body[-1].weight.zero_()
            runs.append(train_on_batch(net, images, labels))
        _ZERO_INIT_RUNS[key] = (runs[0], runs[1])
    return _ZERO_INIT_RUNS[key]


_OPTIONS = ("default", "zero-init")


def _zero_init(context, zero_init_losses, lower_loss):
    images, labels = context["x_batch"][:32], context["y_batch"][:32]
    default, zero = _zero_init_runs(images, labels, len(context["classes"]))
    if (
        not isinstance(zero_init_losses, list | tuple)
        or len(zero_init_losses) != len(zero)
        or not all(is_integer(v) or isinstance(v, float | np.floating) for v in zero_init_losses)
    ):
        return f"zero_init_losses: the list of {len(zero)} losses that train_on_probe returns"
    if close(zero_init_losses, default, atol=2e-3):
        return (
            "zero_init_losses: those are the losses of the network as built; set the scale "
            "(weight) of the last BN of every residual branch to zero before training"
        )
    if not close(zero_init_losses[0], zero[0], atol=2e-3):
        return (
            "zero_init_losses: build the network right after config.seed_everything(0), as in "
            "section 4.5, then zero the weight of the last BN in each of its 10 blocks"
        )
    if not close(zero_init_losses, zero, atol=2e-3):
        return (
            "zero_init_losses: the first loss is right, the training is not; zero the *last* "
            "BN of each branch, then call train_on_probe once on the fresh network"
        )
    if not isinstance(lower_loss, str) or lower_loss.strip().lower() not in _OPTIONS:
        return 'lower_loss: "default" or "zero-init"'
    if abs(default[-1] - zero[-1]) < 2e-3:  # a tie: either answer reads the measurement
        return None
    lower = _OPTIONS[int(zero[-1] < default[-1])]
    if lower_loss.strip().lower() != lower:
        return "lower_loss: compare the last loss of each run"
    return None


EXERCISES = [
    Exercise(
        "4.1",
        "design a bottleneck block",
        2,
        ("block_ex1",),
        _bottleneck,
        "the block is a Bottleneck that maps (2, 256, 16, 16) to (2, 512, 8, 8), has the "
        "parameters of resnet.Bottleneck(256, 128, stride=2), and computes the same function "
        "once its tensors are copied into that block",
    ),
    Exercise(
        "4.2",
        "count the parameters by hand",
        2,
        ("n_params",),
        _basic_block_params,
        "the number equals the parameter count of resnet.BasicBlock(64, 128, stride=2); "
        "no call may count parameters",
        forbidden=(*PARAMETER_COUNTERS, "measure"),
    ),
    Exercise(
        "4.3",
        "which shortcuts need a projection?",
        2,
        ("needs_projection",),
        _projections,
        "each value says whether the helper's block with those arguments has a projection shortcut",
        context=("blocks_ex3",),
    ),
    Exercise(
        "4.4",
        "count the FLOPs of two convolutions by hand",
        2,
        ("stem_flops", "layer1_flops"),
        _flops,
        "both numbers equal PyTorch's FLOP counts for torchvision ResNet-18's conv1 and "
        "layer1[0].conv1 on a 224 x 224 image; no FLOP counter may be called",
        forbidden=(
            "measure",
            "FlopCounterMode",
            "get_total_flops",
            "get_flop_counts",
            "architecture_facts",
        ),
    ),
    Exercise(
        "4.5",
        "start every residual block as the identity",
        3,
        ("zero_init_losses", "lower_loss"),
        _zero_init,
        "the losses equal the judge's own run of train_on_probe on section 4.5's residual "
        "network with the last BN of every branch zeroed, and lower_loss names the run with "
        "the lower last loss in the judge's runs of both networks",
        context=("x_batch", "y_batch", "classes"),
    ),
]
