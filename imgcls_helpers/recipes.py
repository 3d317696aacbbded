"""Named training recipes: a model, its data handling and its optimiser settings in one place.

A recipe is what the ``full`` profile runs on a GPU. Keeping it here, not only in a
notebook, lets a CPU test build every recipe and take one real training step, so a recipe
that is never run in CI still cannot rot. A notebook scales a recipe down for ``smoke`` with
``recipe.scaled(epochs=..., batch_size=...)``, keeping everything else identical.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import NamedTuple

import torch
import torchvision
from torch import nn

from . import data, models, resnet, train, transfer


class Loaders(NamedTuple):
    """The three loaders of :meth:`Recipe.loaders`."""

    train: data.TensorLoader
    val: data.TensorLoader
    test: data.TensorLoader


@dataclass(frozen=True)
class Recipe:
    """A training recipe from scratch: the model, the loaders' settings and ``fit``'s options.

    Frozen, so a chapter that wants fewer epochs makes a copy with :meth:`scaled` and the
    published recipe stays as published.
    """

    name: str
    source: str  # where the recipe comes from
    build: Callable[[int], nn.Module]  # num_classes -> model
    epochs: int
    batch_size: int
    fit_options: dict = field(default_factory=dict)  # passed to train.fit
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None  # batched, training only
    mean: tuple[float, ...] = data.CIFAR10_MEAN
    std: tuple[float, ...] = data.CIFAR10_STD

    def scaled(self, **changes) -> Recipe:
        """A copy with some fields changed, e.g. fewer epochs for the smoke profile."""
        return dataclasses.replace(self, **changes)

    def loaders(self, train: tuple, val: tuple, test: tuple, device=None, seed: int = 0) -> Loaders:
        """In-memory loaders for ``(uint8 images, labels)`` pairs: the training one shuffled
        (in an order drawn with ``seed``) and augmented, validation and test ones plain, and
        each labelled with its split."""
        common = {"mean": self.mean, "std": self.std, "device": device}
        images, labels = train
        train_loader = data.TensorLoader(
            images,
            labels,
            batch_size=self.batch_size,
            shuffle=True,
            augment=self.augment,
            drop_last=len(labels) > self.batch_size,
            split="train",
            seed=seed,
            **common,
        )
        val_loader = data.TensorLoader(*val, batch_size=512, split="val", **common)
        test_loader = data.TensorLoader(*test, batch_size=512, split="test", **common)
        return Loaders(train_loader, val_loader, test_loader)

    def fit(self, model: nn.Module, train_loader, *, val_loader=None, **overrides) -> train.History:
        """``train.fit`` with this recipe's epochs and options (``overrides`` win)."""
        options = {"epochs": self.epochs, **self.fit_options, **overrides}
        return train.fit(model, train_loader, val_loader=val_loader, **options)


# Chapter 3: the 2-conv network with the two optimisers of the seed texts.
CNN_SGD = Recipe(
    "2-conv net, SGD",
    "PyTorch's CIFAR-10 tutorial: SGD, lr 0.001, momentum 0.9 (batch 32 instead of 4)",
    models.TwoConvNet,
    epochs=20,
    batch_size=32,
    fit_options={"optimizer": partial(torch.optim.SGD, lr=1e-3, momentum=0.9)},
)
CNN_ADAM = CNN_SGD.scaled(
    name="2-conv net, Adam",
    source="Adam (Kingma & Ba, 2015, https://arxiv.org/abs/1412.6980) with its default "
    "settings (lr 0.001), the optimiser most introductory PyTorch guides start with",
    fit_options={"optimizer": partial(torch.optim.Adam, lr=1e-3)},
)


def _torchvision_resnet50(num_classes: int) -> nn.Module:
    return torchvision.models.resnet50(weights=None, num_classes=num_classes)


# Chapter 4: a recipe as the tutorials give it, and a fast modern one.
RESNET50_SEED = Recipe(
    "ResNet-50 (ImageNet stem), SGD",
    "AI Online Course, 'Hands-on Image Classification in Computer Vision' (https://www."
    "aionlinecourse.com/tutorial/computer-vision/hands-on-image-classification-in-computer-"
    "vision): torchvision ResNet-50 from scratch, SGD lr 0.01, momentum 0.9, weight decay "
    "1e-4, batch 128, 80 epochs, RandomCrop(32, padding=4); its comment also promises the "
    "random flip its code leaves out, which we add",
    _torchvision_resnet50,
    epochs=80,
    batch_size=128,
    fit_options={"optimizer": partial(torch.optim.SGD, lr=0.01, momentum=0.9, weight_decay=1e-4)},
    augment=data.flip_and_crop,
)
RESNET18_FAST = Recipe(
    "ResNet-18 (CIFAR stem), one-cycle",
    "ResNet-18 widths with a 3x3 stem; SGD (Nesterov) one-cycle to lr 0.2, weight decay 5e-4, "
    "label smoothing 0.1, batch 256, 30 epochs, flip + 4-pixel shift, AMP + channels_last",
    resnet.resnet18_cifar,
    epochs=30,
    batch_size=256,
    fit_options={
        "optimizer": "sgd",
        "lr": 0.2,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "scheduler": "onecycle",
        "label_smoothing": 0.1,
    },
    augment=data.flip_and_crop,
)


def _pretrained_resnet50(num_classes: int) -> nn.Module:
    # Random weights, announced loudly, when the ImageNet ones cannot be had (offline).
    return transfer.backbone("resnet50", num_classes, weights="IMAGENET1K_V2").model


# Chapter 11: fine-tuning on your own folder of photos, all layers at once.
OWN_IMAGES_RESNET50 = Recipe(
    "ResNet-50 (ImageNet weights), AdamW, your own images",
    "the web guide 'The Story That Explains Image Classification', section 'The Full "
    "Training Loop': torchvision ResNet-50 with IMAGENET1K_V2 weights and a new head, all "
    "layers trained, AdamW lr 3e-4, weight decay 1e-2, label smoothing 0.1, gradient norm "
    "clipped at 1.0, cosine schedule stepped per epoch over 30 epochs, batch 64, the epoch "
    "with the best validation accuracy kept. Its augmentation (a random 224 crop of a 256 "
    "resize, a flip, colour jitter) is a random flip here, since the images are held in "
    "memory at one size; its eta_min of 1e-6 is 0 here; its loop has a syntax error "
    "(model.train(if training else model.eval())) that fit() does not share",
    _pretrained_resnet50,
    epochs=30,
    batch_size=64,
    fit_options={
        "optimizer": partial(torch.optim.AdamW, lr=3e-4, weight_decay=1e-2),
        "scheduler": "cosine",
        "scheduler_interval": "epoch",
        "label_smoothing": 0.1,
        "grad_clip": 1.0,
    },
    augment=data.random_flip,
    mean=data.IMAGENET_MEAN,
    std=data.IMAGENET_STD,
)

RECIPES = {
    r.name: r for r in (CNN_SGD, CNN_ADAM, RESNET50_SEED, RESNET18_FAST, OWN_IMAGES_RESNET50)
}


# Chapter 5: transfer learning. Two phases need two optimizers built from the model (the
# second one with a learning rate per layer group), so this recipe has its own class.
@dataclass(frozen=True)
class TransferRecipe:
    """Feature extraction, two-phase fine-tuning and the from-scratch control for one backbone.

    Phase 1 (and the whole of feature extraction) trains only the new head. Phase 2 unfreezes
    the layer groups named in ``finetune_lrs``, each with its own learning rate. Every phase
    uses Adam with a cosine schedule.
    """

    name: str
    source: str
    arch: str  # a torchvision model name
    image_size: int
    batch_size: int
    head_epochs: int  # phase 1; feature extraction trains the head head_epochs + finetune_epochs
    head_lr: float
    finetune_epochs: int  # phase 2
    finetune_lrs: dict[str, float]  # layer group -> learning rate; groups not named stay frozen
    scratch_epochs: int
    scratch_lr: float

    def build(self, num_classes: int, pretrained: bool = True) -> transfer.LoadedModel:
        """The backbone with a new head (random weights, announced, if pretrained fails)."""
        return transfer.backbone(self.arch, num_classes, pretrained=pretrained)

    def head_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        """Freeze everything but the head; Adam on the head alone."""
        transfer.unfreeze(transfer.freeze(model), last=1)
        return torch.optim.Adam([p for p in model.parameters() if p.requires_grad], self.head_lr)

    def finetune_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        """Unfreeze the groups of ``finetune_lrs`` (the last ones); Adam, one lr per group."""
        transfer.unfreeze(transfer.freeze(model), last=len(self.finetune_lrs))
        trainable = transfer.trainable_groups(model)
        if trainable != list(self.finetune_lrs):
            raise ValueError(f"finetune_lrs names {list(self.finetune_lrs)}, not {trainable}")
        groups = transfer.discriminative_param_groups(model, self.head_lr, lrs=self.finetune_lrs)
        return torch.optim.Adam(groups)

    def scratch_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        """Everything trainable, one learning rate: the control without transfer."""
        transfer.unfreeze(model)
        return torch.optim.Adam(model.parameters(), self.scratch_lr)

    def fit(self, model, optimizer, train_loader, *, epochs, val_loader=None, **overrides):
        """``train.fit`` with this optimizer and a cosine schedule over ``epochs``."""
        options = {"epochs": epochs, "optimizer": optimizer, "scheduler": "cosine", **overrides}
        return train.fit(model, train_loader, val_loader=val_loader, **options)


FLOWERS_RESNET50 = TransferRecipe(
    "ResNet-50 (ImageNet weights) on Flowers-102",
    "per-depth (discriminative) learning rates, as in ULMFiT (Howard & Ruder, 2018, "
    "https://arxiv.org/abs/1801.06146), with the values of the web guide 'The Story That "
    "Explains Image Classification' (Adam: layer1 1e-5, layer2 1e-5, layer3 3e-5, layer4 "
    "1e-4, fc 1e-3; the stem stays frozen), cosine schedule; "
    "224 x 224 crops, batch 32",
    "resnet50",
    image_size=224,
    batch_size=32,
    head_epochs=5,
    head_lr=1e-3,
    finetune_epochs=15,
    finetune_lrs={"layer1": 1e-5, "layer2": 1e-5, "layer3": 3e-5, "layer4": 1e-4, "fc": 1e-3},
    scratch_epochs=30,
    scratch_lr=1e-3,
)
