"""Tests for imgcls_helpers.resnet: the blocks against torchvision's, shapes, and what the
skip connections are for (a residual stack trains where the same plain stack struggles)."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from imgcls_helpers import config, data, train
from imgcls_helpers.models import count_parameters
from imgcls_helpers.resnet import (
    BasicBlock,
    Bottleneck,
    ResNet,
    deep_net,
    resnet18_cifar,
    small_resnet,
)


def copy_in_order(source: nn.Module, target: nn.Module) -> None:
    """Copy every parameter and buffer by position (both modules register them in the same
    order: conv, BN, conv, BN, ..., then the projection)."""
    src, dst = source.state_dict(), target.state_dict()
    assert [v.shape for v in src.values()] == [v.shape for v in dst.values()]
    target.load_state_dict(dict(zip(dst, src.values(), strict=True)))


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (lambda: BasicBlock(64, 64), lambda: torchvision.models.resnet18().layer1[0]),
        (lambda: BasicBlock(64, 128, stride=2), lambda: torchvision.models.resnet18().layer2[0]),
        (lambda: Bottleneck(64, 64), lambda: torchvision.models.resnet50().layer1[0]),
        (lambda: Bottleneck(256, 128, stride=2), lambda: torchvision.models.resnet50().layer2[0]),
        (lambda: Bottleneck(512, 128), lambda: torchvision.models.resnet50().layer2[1]),
    ],
)
def test_blocks_compute_what_torchvisions_blocks_compute(ours, theirs):
    torch.manual_seed(0)
    reference, block = theirs().eval(), ours().eval()
    for bn in (m for m in reference.modules() if isinstance(m, nn.BatchNorm2d)):
        nn.init.uniform_(bn.weight, 0.5, 1.5)  # torchvision zero-inits nothing here, but
        nn.init.uniform_(bn.running_var, 0.5, 1.5)  # make BN non-trivial so the test bites
    copy_in_order(reference, block)
    assert count_parameters(block) == count_parameters(reference)
    x = torch.randn(2, block.residual[0].in_channels, 16, 16)
    torch.testing.assert_close(block(x), reference(x))


@pytest.mark.parametrize(
    ("block", "cin", "channels", "stride", "projection", "out_shape"),
    [
        (BasicBlock, 16, 16, 1, False, (2, 16, 8, 8)),
        (BasicBlock, 16, 32, 2, True, (2, 32, 4, 4)),
        (BasicBlock, 16, 16, 2, True, (2, 16, 4, 4)),
        (Bottleneck, 64, 16, 1, False, (2, 64, 8, 8)),
        (Bottleneck, 16, 16, 1, True, (2, 64, 8, 8)),
        (Bottleneck, 64, 32, 2, True, (2, 128, 4, 4)),
    ],
)
def test_shortcut_is_identity_unless_shape_or_stride_changes(
    block, cin, channels, stride, projection, out_shape
):
    module = block(cin, channels, stride)
    assert isinstance(module.shortcut, nn.Identity) != projection
    assert module(torch.randn(2, cin, 8, 8)).shape == out_shape


def test_resnet_stages_match_torchvision_resnet50_and_resnet18_differs_only_in_the_stem():
    ours = ResNet(Bottleneck, (3, 4, 6, 3), 1000)
    reference = torchvision.models.resnet50()
    layers = sum(p.numel() for n, p in reference.named_parameters() if n.startswith("layer"))
    assert count_parameters(ours.stages) == layers
    stem_difference = (7 * 7 - 3 * 3) * 3 * 64  # 7x7 ImageNet stem vs our 3x3 stem
    tv18 = torchvision.models.resnet18(num_classes=10)
    assert count_parameters(resnet18_cifar(10)) == count_parameters(tv18) - stem_difference


def test_small_images_keep_their_resolution_through_the_cifar_stem():
    model = small_resnet(5, width=8, blocks_per_stage=(1, 1, 1)).eval()
    x = torch.randn(3, 3, 32, 32)
    assert model.stem(x).shape == (3, 8, 32, 32)  # no stride, no max-pool at the start
    assert model.stages(model.stem(x)).shape == (3, 32, 8, 8)  # two halvings, width x4
    assert model(x).shape == (3, 5)


def test_plain_and_residual_nets_differ_only_in_the_skips():
    torch.manual_seed(0)
    plain = deep_net(4, blocks=3, residual=False)
    torch.manual_seed(0)
    residual = deep_net(4, blocks=3, residual=True)
    for (name, p), (_, r) in zip(
        plain.named_parameters(), residual.named_parameters(), strict=True
    ):
        assert torch.equal(p, r), name
    convs = [m for m in plain.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(convs) == 2 * 3 + 2
    x = torch.randn(2, 3, 16, 16)
    assert not torch.allclose(plain.eval()(x), residual.eval()(x))


def test_without_batch_norm_gradients_vanish_in_the_plain_stack_but_not_the_residual_one():
    grads = {}
    for residual in (False, True):
        torch.manual_seed(0)
        model = deep_net(8, blocks=10, residual=residual, batch_norm=False)
        x, y = torch.randn(16, 3, 32, 32), torch.randint(0, 8, (16,))
        nn.functional.cross_entropy(model(x), y).backward()
        first_block_conv = [m for m in model.modules() if isinstance(m, nn.Conv2d)][1]
        grads[residual] = first_block_conv.weight.grad.norm().item()
    assert grads[True] > 1000 * grads[False], grads


def test_a_deep_residual_stack_trains_faster_than_the_same_plain_stack():
    split = data.shapes_splits(800, 0, 0, seed=4)
    images, labels = data.dataset_to_tensors(split.train)
    losses = {}
    for residual in (False, True):
        config.seed_everything(4)
        model = deep_net(8, blocks=10, residual=residual, width=16)
        loader = data.TensorLoader(images, labels, batch_size=32, shuffle=True, device="cpu")
        history = train.fit(
            model, loader, epochs=4, optimizer="sgd", lr=0.005, progress=False, verbose=False
        )
        losses[residual] = history.train_loss[-1]
    assert losses[True] < losses[False] - 0.15, losses
