"""Transfer learning: reuse a network trained on one task as the start for another.

A pretrained network already computes useful features; a new task needs a new *head* (the
last linear layer, sized for the new classes) and a decision about how much of the rest to
train. :func:`backbone` builds a torchvision model with a new head. :func:`layer_groups` cuts
a model into groups from the input to the head: the units we freeze, unfreeze and give
learning rates to. :func:`freeze` and :func:`unfreeze` switch groups off and on, and
:func:`discriminative_param_groups` gives every trainable group its own learning rate,
smaller towards the input, where the features are the most general and should change least.

Batch normalisation (BN) needs a decision. A BN layer does not only have weights; it also
keeps running statistics of the data, and in training mode it normalises with the current
batch's statistics and updates the running ones. We treat a frozen BN layer as frozen
completely: it always runs as in evaluation mode, with its stored statistics, even while
the rest of the model trains. Then a frozen part computes one fixed function of the image,
as "feature extraction" promises; otherwise its output would depend on which other images
share the batch (noisy with small batches of few labels) and its statistics would drift
towards the new data under layers that were trained with the old ones. Keras's fine-tuning
guide and torchvision's ``FrozenBatchNorm2d`` make the same choice. Because ``model.train()``
(which ``train.fit`` calls every epoch) switches every layer back to training mode, the rule
is applied by a small forward pre-hook, and it follows ``requires_grad``: unfreezing a group
makes its BN layers train normally again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torch import nn

from .config import announce, is_offline
from .resnet import ResNet
from .vit import SmallViT

_BatchNorm = nn.modules.batchnorm._BatchNorm  # BatchNorm1d/2d/3d and SyncBatchNorm


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
    chosen = _weights(name, weights)
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


def _weights(name: str, weights: str) -> torchvision.models.WeightsEnum:
    """torchvision's weights ``weights`` (a member name such as ``"IMAGENET1K_V2"``, or
    ``"DEFAULT"``) for model ``name``."""
    enum = torchvision.models.get_model_weights(name)
    return enum.DEFAULT if weights == "DEFAULT" else enum[weights]


def replace_head(model: nn.Module, num_classes: int) -> nn.Linear:
    """Swap the model's last ``nn.Linear`` for a new, randomly initialised one with
    ``num_classes`` outputs; return the old one.

    The last linear layer a model registers is its head in torchvision's ResNets (``.fc``),
    EfficientNet, MobileNet and ConvNeXt (``.classifier[-1]``), the vision transformers
    (``.heads.head``) and this book's models (``.head[-1]``).
    """
    name = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)][-1]
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name)
    old = getattr(parent, child)
    new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    setattr(parent, child, new.to(old.weight.device))
    return old


def backbone(
    name: str, num_classes: int, *, pretrained: bool = True, weights: str = "DEFAULT"
) -> LoadedModel:
    """torchvision model ``name`` (e.g. ``"resnet50"``, ``"efficientnet_b0"``) with a new head.

    ``pretrained=True`` loads ``weights`` through :func:`pretrained_or_random`, which
    announces loudly when they cannot be had (offline) and falls back to random weights;
    check ``.pretrained`` of the result. ``pretrained=False`` asks for random weights. The
    result's ``.weights`` still describes the pretrained weights (their preprocessing, their
    ImageNet accuracy), but its ``.categories`` are ImageNet's, not the new head's classes.
    """
    if pretrained:
        loaded = pretrained_or_random(name, weights)
    else:
        model = torchvision.models.get_model(name, weights=None)
        chosen = _weights(name, weights)
        loaded = LoadedModel(model, False, chosen, f"{name} with random weights (as asked)")
    old = replace_head(loaded.model, num_classes)
    loaded.note += f"; new head: {old.in_features} features -> {num_classes} classes"
    return loaded


def layer_groups(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The model as ``(name, module)`` groups in order from the input to the head.

    torchvision ResNet: ``stem`` (conv1 + bn1), ``layer1`` ... ``layer4``, ``fc``. Models
    with ``.features`` and ``.classifier`` (EfficientNet, MobileNet, ConvNeXt, VGG):
    ``features.0``, ``features.1``, ..., ``classifier``. This book's ResNet: ``stem``, one
    group per block of ``.stages`` (``stages.0``, ...), ``head``. torchvision's vision
    transformers: ``embed`` (``conv_proj``, ``class_token`` and ``encoder.pos_embedding``,
    which belong to no single child), one group per encoder block
    (``encoder.layers.encoder_layer_0``, ...), the final norm ``encoder.ln``, ``heads``. This
    book's :class:`~imgcls_helpers.vit.SmallViT`: ``embed``, ``blocks.0``, ..., ``norm``,
    ``head``. Any other model: its direct children that hold parameters. Raises
    ``ValueError`` if the groups miss a parameter.
    """
    if isinstance(model, torchvision.models.ResNet):
        groups = [("stem", nn.ModuleList([model.conv1, model.bn1]))]
        groups += [(f"layer{i}", getattr(model, f"layer{i}")) for i in range(1, 5)]
        groups.append(("fc", model.fc))
    elif isinstance(model, ResNet):
        groups = [("stem", model.stem)]
        groups += [(f"stages.{i}", block) for i, block in enumerate(model.stages)]
        groups.append(("head", model.head))
    elif isinstance(model, torchvision.models.VisionTransformer):
        embed = nn.Module()  # a container, so the loose parameters form one group
        embed.conv_proj = model.conv_proj
        embed.class_token = model.class_token
        embed.pos_embedding = model.encoder.pos_embedding
        groups = [("embed", embed)]
        groups += [(f"encoder.layers.{n}", m) for n, m in model.encoder.layers.named_children()]
        groups += [("encoder.ln", model.encoder.ln), ("heads", model.heads)]
    elif isinstance(model, SmallViT):
        groups = [("embed", model.embed)]
        groups += [(f"blocks.{i}", block) for i, block in enumerate(model.blocks)]
        groups += [("norm", model.norm), ("head", model.head)]
    elif isinstance(getattr(model, "features", None), nn.Sequential) and hasattr(
        model, "classifier"
    ):
        groups = [(f"features.{i}", m) for i, m in enumerate(model.features)]
        groups.append(("classifier", model.classifier))
    else:
        groups = [(n, m) for n, m in model.named_children() if any(True for _ in m.parameters())]
    covered = sum(p.numel() for _, m in groups for p in m.parameters())
    total = sum(p.numel() for p in model.parameters())
    if covered != total:
        raise ValueError(
            f"layer_groups: the groups of {type(model).__name__} hold {covered:,} of its "
            f"{total:,} parameters; add a case for this model"
        )
    return groups


def _frozen_bn_uses_stored_statistics(bn: nn.Module, _inputs) -> None:
    """Forward pre-hook: a BN layer whose weights are frozen runs in evaluation mode."""
    if bn.weight is not None and not bn.weight.requires_grad:
        bn.train(False)


def freeze(model: nn.Module) -> nn.Module:
    """Make every parameter untrainable and every BN layer keep its statistics (see the
    module docstring); follow with :func:`unfreeze` to choose what trains. Returns ``model``."""
    model.requires_grad_(False)
    for module in model.modules():
        if isinstance(module, _BatchNorm):
            if not getattr(module, "_eval_when_frozen", False):
                module.register_forward_pre_hook(_frozen_bn_uses_stored_statistics)
                module._eval_when_frozen = True
            module.train(False)
    return model


def unfreeze(model: nn.Module, last: int | None = None) -> nn.Module:
    """Make the last ``last`` layer groups trainable (the head counts as one group); all of
    them if ``last`` is None. Their BN layers train normally again. Returns ``model``."""
    groups = layer_groups(model)
    chosen = groups if last is None else groups[len(groups) - last :] if last > 0 else []
    for _, module in chosen:
        module.requires_grad_(True)
        module.train(model.training)
    return model


def trainable_groups(model: nn.Module) -> list[str]:
    """Names of the layer groups that have at least one trainable parameter."""
    return [n for n, m in layer_groups(model) if any(p.requires_grad for p in m.parameters())]


def discriminative_param_groups(
    model: nn.Module,
    head_lr: float,
    *,
    factor: float = 0.1,
    lrs: dict[str, float] | None = None,
) -> list[dict]:
    """Optimizer parameter groups, one per layer group with trainable parameters.

    The head gets ``head_lr``; a group ``k`` places below the head gets ``head_lr * factor**k``
    unless ``lrs`` names it (``{"layer1": 1e-5, ...}``). Frozen parameters are left out, so
    the result goes straight into e.g. ``torch.optim.Adam(groups)``. Each group also carries
    its ``"name"``, which the optimizer keeps, so ``optimizer.param_groups`` stays readable.
    """
    lrs = lrs or {}
    result = []
    for k, (name, module) in enumerate(reversed(layer_groups(model))):
        params = [p for p in module.parameters() if p.requires_grad]
        if params:
            lr = lrs.get(name, head_lr * factor**k)
            result.append({"params": params, "lr": lr, "name": name})
    return result[::-1]
