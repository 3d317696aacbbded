"""Every full-profile recipe is built and takes real training steps on CPU, so the GPU path
(never run in CI) cannot rot: a renamed option or a broken model fails here."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from imgcls_helpers import data, models, transfer
from imgcls_helpers.recipes import (
    CNN_ADAM,
    CNN_SGD,
    FLOWERS_RESNET50,
    OWN_IMAGES_RESNET50,
    RECIPES,
    RESNET18_FAST,
    RESNET50_SEED,
)


@pytest.mark.parametrize("recipe", RECIPES.values(), ids=list(RECIPES))
def test_full_recipe_builds_and_trains_two_steps_on_cpu(recipe):
    torch.manual_seed(0)
    model = recipe.build(10)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    labels = torch.arange(16) % 10
    # Two steps (a one-step one-cycle schedule would sit at its minimum learning rate).
    tiny = recipe.scaled(batch_size=8, epochs=1)  # all else as in the full recipe
    loaders = tiny.loaders((images, labels), (images, labels), (images, labels), device="cpu")
    assert len(loaders.train) == 2
    assert [data.split_of(loader) for loader in loaders] == ["train", "val", "test"]
    before = [p.detach().clone() for p in model.parameters()]
    history = tiny.fit(model, loaders.train, val_loader=loaders.val, progress=False, verbose=False)
    assert history.epoch == [1]
    assert all(torch.isfinite(torch.tensor(history.train_loss)))
    changed = sum(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert changed == len(before)


def test_scaled_changes_only_what_it_is_told():
    small = RESNET18_FAST.scaled(epochs=2, batch_size=16)
    assert (small.epochs, small.batch_size) == (2, 16)
    assert small.fit_options == RESNET18_FAST.fit_options
    assert small.augment is RESNET18_FAST.augment is data.flip_and_crop
    assert RESNET18_FAST.epochs == 30  # the original is untouched (frozen dataclass)


def test_recipes_say_what_the_seed_texts_say():
    sgd = CNN_SGD.fit_options["optimizer"]([torch.nn.Parameter(torch.zeros(1))])
    assert type(sgd) is torch.optim.SGD and not sgd.defaults["nesterov"]
    assert (sgd.defaults["lr"], sgd.defaults["momentum"]) == (1e-3, 0.9)
    adam = CNN_ADAM.fit_options["optimizer"]([torch.nn.Parameter(torch.zeros(1))])
    assert type(adam) is torch.optim.Adam and adam.defaults["lr"] == 1e-3
    seed = RESNET50_SEED.fit_options["optimizer"]([torch.nn.Parameter(torch.zeros(1))])
    assert (seed.defaults["lr"], seed.defaults["momentum"], seed.defaults["weight_decay"]) == (
        0.01,
        0.9,
        1e-4,
    )
    assert RESNET50_SEED.augment is data.flip_and_crop


def test_the_own_images_recipe_is_seed_004s_loop(monkeypatch):
    """AdamW 3e-4 / 1e-2, label smoothing 0.1, clipping at 1.0, a cosine schedule stepped per
    epoch, 30 epochs of batch 64, ImageNet statistics, on ResNet-50's IMAGENET1K_V2 weights."""
    asked = []
    real = transfer.backbone
    monkeypatch.setattr(transfer, "backbone", lambda *a, **k: asked.append((a, k)) or real(*a, **k))
    recipe = OWN_IMAGES_RESNET50
    model = recipe.build(4)
    assert asked == [(("resnet50", 4), {"weights": "IMAGENET1K_V2"})]
    assert model.fc.out_features == 4
    adamw = recipe.fit_options["optimizer"]([torch.nn.Parameter(torch.zeros(1))])
    assert type(adamw) is torch.optim.AdamW
    assert (adamw.defaults["lr"], adamw.defaults["weight_decay"]) == (3e-4, 1e-2)
    options = {k: v for k, v in recipe.fit_options.items() if k != "optimizer"}
    assert options == {"scheduler": "cosine", "scheduler_interval": "epoch",
                       "label_smoothing": 0.1, "grad_clip": 1.0}  # fmt: skip
    assert (recipe.epochs, recipe.batch_size) == (30, 64)
    assert (recipe.mean, recipe.std) == (data.IMAGENET_MEAN, data.IMAGENET_STD)


def test_transfer_recipe_builds_with_random_weights_and_takes_one_finetuning_step_on_cpu():
    recipe = FLOWERS_RESNET50
    torch.manual_seed(0)
    model = recipe.build(102, pretrained=False).model
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 102)

    head = recipe.head_optimizer(model)
    assert sum(p.numel() for g in head.param_groups for p in g["params"]) == 2048 * 102 + 102

    optimizer = recipe.finetune_optimizer(model)
    lrs = {g["name"]: g["lr"] for g in optimizer.param_groups}
    assert lrs == {"layer1": 1e-5, "layer2": 1e-5, "layer3": 3e-5, "layer4": 1e-4, "fc": 1e-3}
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    loader = data.TensorLoader(images, torch.tensor([0, 101]), batch_size=2, device="cpu")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    stem_stats = model.bn1.running_var.clone()
    layer1_stats = model.layer1[0].bn1.running_var.clone()
    history = recipe.fit(model, optimizer, loader, epochs=1, progress=False, verbose=False)
    assert history.epoch == [1] and all(torch.isfinite(torch.tensor(history.train_loss)))
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == set(before) - {"conv1.weight", "bn1.weight", "bn1.bias"}  # stem frozen
    assert torch.equal(model.bn1.running_var, stem_stats)  # frozen BN keeps its statistics
    assert not torch.equal(model.layer1[0].bn1.running_var, layer1_stats)

    recipe.scratch_optimizer(model)
    assert models.count_parameters(model, trainable_only=True) == models.count_parameters(model)


def test_transfer_recipe_rejects_learning_rates_for_groups_it_would_not_train():
    typo = FLOWERS_RESNET50.finetune_lrs | {"layer5": 1e-4}
    bad = dataclasses.replace(FLOWERS_RESNET50, finetune_lrs=typo)
    with pytest.raises(ValueError, match="layer5"):
        bad.finetune_optimizer(FLOWERS_RESNET50.build(3, pretrained=False).model)


def test_loaders_shuffle_in_an_order_drawn_with_the_seed():
    images = torch.arange(64, dtype=torch.uint8).view(64, 1, 1, 1).expand(64, 3, 2, 2)
    labels = torch.arange(64)
    pair = (images, labels)
    recipe = RESNET18_FAST.scaled(batch_size=64, augment=None)

    def order(seed):
        return next(iter(recipe.loaders(pair, pair, pair, device="cpu", seed=seed).train))[1]

    assert torch.equal(order(0), order(0))
    assert not torch.equal(order(0), order(1))
