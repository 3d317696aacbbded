"""Tests for imgcls_helpers.transfer: new heads, layer groups, freezing (BN included) and
per-group learning rates, on torchvision's models and on this book's own."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from imgcls_helpers import models, resnet, transfer, vit
from imgcls_helpers.transfer import (
    backbone,
    discriminative_param_groups,
    freeze,
    layer_groups,
    replace_head,
    trainable_groups,
    unfreeze,
)


def on_meta(name: str) -> nn.Module:
    """A torchvision model without memory or initialisation cost, for structural tests."""
    with torch.device("meta"):
        return torchvision.models.get_model(name, weights=None)


def n_trainable(model: nn.Module) -> int:
    return models.count_parameters(model, trainable_only=True)


@pytest.mark.parametrize(
    ("build", "head"),
    [
        (lambda: on_meta("resnet50"), lambda m: m.fc),
        (lambda: on_meta("efficientnet_b0"), lambda m: m.classifier[-1]),
        (lambda: on_meta("mobilenet_v3_small"), lambda m: m.classifier[-1]),
        (lambda: on_meta("convnext_tiny"), lambda m: m.classifier[-1]),
        (lambda: on_meta("vit_b_16"), lambda m: m.heads.head),
        (lambda: resnet.small_resnet(8), lambda m: m.head[-1]),
        (lambda: models.SmallCNN(8, width=8), lambda m: m.head[-1]),
    ],
    ids=["resnet50", "efficientnet_b0", "mobilenet_v3", "convnext_tiny", "vit", "book", "cnn"],
)
def test_replace_head_swaps_the_documented_layer(build, head):
    model = build()
    old_head = head(model)
    returned = replace_head(model, 7)
    assert returned is old_head
    new_head = head(model)
    assert new_head is not old_head and isinstance(new_head, nn.Linear)
    assert (new_head.in_features, new_head.out_features) == (old_head.in_features, 7)
    assert new_head.weight.device == old_head.weight.device


@pytest.mark.parametrize("name", ["resnet18", "efficientnet_b0"])
def test_backbone_without_weights_classifies_into_the_new_classes(name):
    loaded = backbone(name, 5, pretrained=False)
    assert not loaded.pretrained
    assert loaded.weights is torchvision.models.get_model_weights(name).DEFAULT
    loaded.model.eval()
    with torch.no_grad():
        assert loaded.model(torch.randn(2, 3, 64, 64)).shape == (2, 5)


def test_backbone_offline_says_random_weights_and_does_not_download(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # nothing cached here
    loaded = backbone("resnet18", 3)  # the conftest fails the test on any network access
    assert not loaded.pretrained
    assert "RANDOM WEIGHTS" in capsys.readouterr().out
    assert loaded.model.fc.out_features == 3


def assert_partition(model: nn.Module, groups) -> None:
    """Every parameter is in exactly one group."""
    seen = [id(p) for _, m in groups for p in m.parameters()]
    assert len(seen) == len(set(seen))
    assert set(seen) == {id(p) for p in model.parameters()}


def test_layer_groups_of_torchvision_resnet():
    model = on_meta("resnet50")
    groups = layer_groups(model)
    assert [n for n, _ in groups] == ["stem", "layer1", "layer2", "layer3", "layer4", "fc"]
    assert groups[-1][1] is model.fc and groups[1][1] is model.layer1
    assert_partition(model, groups)


def test_layer_groups_of_features_classifier_models():
    model = on_meta("efficientnet_b0")
    groups = layer_groups(model)
    names = [n for n, _ in groups]
    assert names == [f"features.{i}" for i in range(len(model.features))] + ["classifier"]
    assert_partition(model, groups)


def test_layer_groups_of_the_books_resnet_and_the_fallback():
    model = resnet.small_resnet(4, blocks_per_stage=(1, 2))
    groups = layer_groups(model)
    assert [n for n, _ in groups] == ["stem", "stages.0", "stages.1", "stages.2", "head"]
    assert_partition(model, groups)
    cnn = models.SmallCNN(4, width=8)
    assert [n for n, _ in layer_groups(cnn)] == ["features", "head"]


def test_layer_groups_refuses_a_model_it_cannot_cover():
    class WithLooseParameter(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(1))  # belongs to no child
            self.fc = nn.Linear(2, 2)

    with pytest.raises(ValueError, match="add a case"):
        layer_groups(WithLooseParameter())


def test_freeze_then_unfreeze_the_head_leaves_exactly_the_head_trainable():
    model = backbone("resnet18", 10, pretrained=False).model
    freeze(model)
    assert n_trainable(model) == 0
    unfreeze(model, last=1)
    assert n_trainable(model) == 512 * 10 + 10  # in_features x classes + one bias per class
    assert trainable_groups(model) == ["fc"]
    unfreeze(model, last=2)
    assert trainable_groups(model) == ["layer4", "fc"]
    unfreeze(model)
    assert n_trainable(model) == models.count_parameters(model)
    freeze(model)
    unfreeze(model, last=0)
    assert trainable_groups(model) == []


def bn_layers(module: nn.Module) -> list[nn.BatchNorm2d]:
    return [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]


def test_frozen_batch_norm_keeps_its_statistics_while_the_model_trains():
    torch.manual_seed(0)
    model = resnet.small_resnet(4)
    unfreeze(freeze(model), last=2)  # stages.2 and the head train, the rest is frozen
    frozen, trained = model.stages[1], model.stages[2]
    before = [bn.running_mean.clone() for bn in bn_layers(model)]
    x = torch.randn(8, 3, 32, 32)
    model.train()  # what train.fit does every epoch
    model(x)
    after = [bn.running_mean for bn in bn_layers(model)]
    kept = [torch.equal(a, b) for a, b in zip(before, after, strict=True)]
    n_frozen = len(bn_layers(model)) - len(bn_layers(trained))
    assert kept == [True] * n_frozen + [False] * len(bn_layers(trained))
    assert all(not bn.training for bn in bn_layers(frozen))
    assert all(bn.training for bn in bn_layers(trained))


def test_a_frozen_backbone_is_a_fixed_function_of_each_image():
    torch.manual_seed(0)
    model = resnet.small_resnet(4)
    unfreeze(freeze(model), last=1)
    model.train()
    features = nn.Sequential(model.stem, model.stages)
    x = torch.randn(6, 3, 32, 32)
    alone, batched = features(x[:1]), features(x)[:1]  # training mode, different batches
    torch.testing.assert_close(alone, batched)
    model.eval()
    torch.testing.assert_close(features(x[:1]), alone)


def test_unfrozen_batch_norm_trains_again():
    model = resnet.small_resnet(4)
    freeze(model)
    unfreeze(model)
    model.train()
    before = model.stem[1].running_mean.clone()
    model(torch.randn(8, 3, 32, 32))
    assert not torch.equal(model.stem[1].running_mean, before)


def test_a_training_step_changes_only_the_trainable_groups():
    torch.manual_seed(0)
    model = resnet.small_resnet(4)
    unfreeze(freeze(model), last=2)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.AdamW(discriminative_param_groups(model, 1e-2))
    nn.functional.cross_entropy(model(torch.randn(8, 3, 32, 32)), torch.arange(8) % 4).backward()
    optimizer.step()
    changed = {n.split(".")[0] + "." + n.split(".")[1] for n, p in model.named_parameters()
               if not torch.equal(p, before[n])}  # fmt: skip
    assert changed == {"stages.2", "head.2"}


def test_discriminative_learning_rates_shrink_towards_the_input():
    model = resnet.small_resnet(4)  # groups: stem, stages.0, stages.1, stages.2, head
    unfreeze(freeze(model), last=3)
    groups = discriminative_param_groups(model, 1e-2, factor=0.5)
    assert [g["name"] for g in groups] == ["stages.1", "stages.2", "head"]
    assert [g["lr"] for g in groups] == pytest.approx([1e-2 * 0.25, 1e-2 * 0.5, 1e-2])
    in_groups = [id(p) for g in groups for p in g["params"]]
    trainable = [id(p) for p in model.parameters() if p.requires_grad]
    assert sorted(in_groups) == sorted(trainable)
    optimizer = torch.optim.Adam(groups)
    assert [g["name"] for g in optimizer.param_groups] == ["stages.1", "stages.2", "head"]


def test_discriminative_learning_rates_by_name():
    model = on_meta("resnet50")
    unfreeze(freeze(model), last=5)
    lrs = {"layer1": 1e-5, "layer2": 1e-5, "layer3": 3e-5, "layer4": 1e-4, "fc": 1e-3}
    groups = discriminative_param_groups(model, 1e-3, lrs=lrs)
    assert {g["name"]: g["lr"] for g in groups} == lrs


def test_models_reexports_the_transfer_tools():
    assert transfer.backbone is transfer.backbone
    assert transfer.freeze is transfer.freeze
    assert transfer.discriminative_param_groups is transfer.discriminative_param_groups


def test_layer_groups_of_torchvision_vit_cover_the_loose_embedding_parameters():
    model = on_meta("vit_b_16")
    groups = layer_groups(model)
    names = [n for n, _ in groups]
    blocks = [f"encoder.layers.encoder_layer_{i}" for i in range(12)]
    assert names == ["embed", *blocks, "encoder.ln", "heads"]
    embed = dict(groups)["embed"]
    assert {id(p) for p in embed.parameters()} == {
        id(model.class_token), id(model.encoder.pos_embedding),
        id(model.conv_proj.weight), id(model.conv_proj.bias),
    }  # fmt: skip
    assert_partition(model, groups)


def test_freezing_a_vit_then_unfreezing_the_head_trains_only_the_head():
    model = vit.SmallViT(3, image_size=8, patch_size=4, dim=8, depth=2, heads=2)
    groups = [n for n, _ in layer_groups(model)]
    assert groups == ["embed", "blocks.0", "blocks.1", "norm", "head"]
    unfreeze(freeze(model), last=1)
    assert trainable_groups(model) == ["head"]
    assert not model.embed.class_token.requires_grad
    tv = torchvision.models.VisionTransformer(
        image_size=32, patch_size=16, num_layers=2, num_heads=2, hidden_dim=8, mlp_dim=16
    )
    unfreeze(freeze(tv), last=2)
    assert trainable_groups(tv) == ["encoder.ln", "heads"]
    assert not tv.class_token.requires_grad and not tv.encoder.pos_embedding.requires_grad
    assert n_trainable(tv) == sum(
        p.numel() for p in [*tv.encoder.ln.parameters(), *tv.heads.parameters()]
    )
