"""Chapter 4's exercises: the solution passes, plausible wrong answers fail."""

from __future__ import annotations

import pytest
import torch
from exercise_cases import Case, assert_case
from torch import nn

from imgcls_helpers import config, resnet
from imgcls_helpers.exercises.ch04 import train_on_batch


@pytest.fixture(scope="module")
def context():
    generator = torch.Generator().manual_seed(0)
    return {
        # the probe batch of section 4.5, smaller (16 x 16 images) to keep the test fast
        "x_batch": torch.randn(40, 3, 16, 16, generator=generator),
        "y_batch": torch.randint(0, 8, (40,), generator=generator),
        "classes": [f"class {i}" for i in range(8)],
        "blocks_ex3": [
            (resnet.BasicBlock, 64, 64, 1),
            (resnet.BasicBlock, 64, 64, 2),
            (resnet.Bottleneck, 64, 64, 1),
            (resnet.Bottleneck, 256, 64, 1),
            (resnet.BasicBlock, 128, 256, 2),
        ],
    }


class Bottleneck(resnet.Bottleneck):
    """The right layers, but the shortcut is never added: same parameters, other function."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.residual(x))


def _losses(context, *, zero: int | None, seed: int = 0, lr: float = 0.01) -> list[float]:
    """Section 4.5's residual network trained on the batch, with the weight of layer ``zero``
    of each branch's body zeroed first (``-1``: the last BN; ``None``: nothing)."""
    config.seed_everything(seed)
    net = resnet.deep_net(len(context["classes"]), blocks=10, residual=True)
    if zero is not None:
        with torch.no_grad():
            for module in net.modules():
                if isinstance(module, resnet._ResidualBlock):
                    module.body[zero].weight.zero_()
    images, labels = context["x_batch"][:32], context["y_batch"][:32]
    if lr == 0.01:
        return train_on_batch(net, images, labels)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)  # an edited loop
    losses = []
    for _ in range(8):
        loss = nn.functional.cross_entropy(net(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def cases(context):
    block = resnet.Bottleneck(256, 128, stride=2)
    convs = 64 * 128 * 9 + 128 * 128 * 9 + 64 * 128
    n_params = convs + 3 * 2 * 128
    stem = 2 * 112 * 112 * 7 * 7 * 3 * 64
    layer1 = 2 * 56 * 56 * 3 * 3 * 64 * 64
    default = _losses(context, zero=None)
    zero_init = _losses(context, zero=-1)
    lower = "zero-init" if zero_init[-1] < default[-1] else "default"
    other = "default" if lower == "zero-init" else "zero-init"
    return {
        "4.1": Case(
            (block,),
            {
                "the output, not the block": (block(torch.randn(2, 256, 16, 16)),),
                "random tensor of the right shape": (torch.randn(2, 512, 8, 8),),
                "channels = output channels": (resnet.Bottleneck(256, 512, stride=2),),
                "stride 1": (resnet.Bottleneck(256, 128),),
                "a basic block of the right shape": (resnet.BasicBlock(256, 512, stride=2),),
                "a strided 1x1 convolution": (nn.Conv2d(256, 512, 1, stride=2),),
                "the right layers without the shortcut": (Bottleneck(256, 128, stride=2),),
            },
        ),
        "4.2": Case(
            (n_params,),
            {
                "no projection": (n_params - 64 * 128 - 2 * 128,),
                "BN buffers counted": (n_params + 3 * 2 * 128,),
                "no BN": (convs,),
                "conv biases": (n_params + 3 * 128,),
                "a round number": (200_000,),
                "text": (str(n_params),),
            },
            forbidden="n_params = models.count_parameters(resnet.BasicBlock(64, 128, stride=2))",
        ),
        "4.3": Case(
            ([False, True, True, False, True],),
            {
                "bottleneck expansion forgotten": ([False, True, False, False, True],),
                "one bottleneck wrong": ([False, True, True, True, True],),
                "all True": ([True] * 5,),
                "all False": ([False] * 5,),
                "too short": ([False, True, True, True],),
                "words": (["no", "yes", "yes", "yes", "yes"],),
            },
        ),
        "4.4": Case(
            (stem, layer1),
            {
                "multiply-adds": (stem // 2, layer1 // 2),
                "stride forgotten": (2 * 224 * 224 * 7 * 7 * 3 * 64, layer1),
                "max-pool forgotten": (stem, 2 * 112 * 112 * 9 * 64 * 64),
                "GFLOPs": (stem / 1e9, layer1 / 1e9),
                "swapped": (layer1, stem),
            },
            forbidden="stem_flops = tour.measure(lambda: conv, (3, 224, 224)).flops",
        ),
        "4.5": Case(
            (zero_init, lower),
            {
                "nothing zeroed": (default, lower),
                "another seed": (_losses(context, zero=-1, seed=1), lower),
                "train_on_probe edited: lr 0.05": (_losses(context, zero=-1, lr=0.05), lower),
                "a constant": ([2.0] * len(zero_init), lower),
                "the other run named": (zero_init, other),
                "a free answer": (zero_init, "both"),
            },
        ),
    }


@pytest.fixture(scope="module")
def all_cases(context):
    return cases(context)  # built once: exercise 4.5's cases train networks


@pytest.mark.parametrize("exercise_id", ["4.1", "4.2", "4.3", "4.4", "4.5"])
def test_exercise(context, all_cases, exercise_id):
    assert_case(exercise_id, all_cases[exercise_id], context)
