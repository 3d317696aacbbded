"""Chapter 5, transfer learning: the judges of its exercises."""

from __future__ import annotations

import functools
import hashlib

import numpy as np
import torch
from torch import nn

from .. import config, data, metrics, resnet, train, transfer
from ..labs import PARAMETER_COUNTERS, Exercise, close, digest, is_integer


@functools.cache
def _pets(last: int) -> nn.Module:
    """Exercise 5.1's EfficientNet-B0 for 37 classes, with its ``last`` groups unfrozen; built
    on the meta device (shapes only: nothing is allocated or initialised)."""
    with torch.device("meta"):
        model = transfer.backbone("efficientnet_b0", 37, pretrained=False).model
    return transfer.unfreeze(transfer.freeze(model), last=last)


def _head_count(context, n_trainable):
    if not is_integer(n_trainable):
        return "give a whole number (an int)"
    model = _pets(last=1)
    expected = sum(p.numel() for p in model.parameters() if p.requires_grad)
    features = model.classifier[-1].in_features
    n = int(n_trainable)
    if n == features * 37:
        return "the head also has one bias per class"
    if n in (features * 1000 + 1000, features * 102 + 102):
        return "the new head has one output per class of the Pets dataset"
    if n != expected:
        return "in_features x classes weights, plus one bias per class: print pets.classifier"
    return None


def _groups(context, groups):
    if not isinstance(groups, list | tuple) or not all(isinstance(g, str) for g in groups):
        return "give a list of group names (strings), such as 'features.0'"
    expected = transfer.trainable_groups(_pets(last=3))
    groups = [g.strip() for g in groups]
    if groups == expected:
        return None
    if sorted(groups) == sorted(expected):
        return "list them in order, from the input towards the head"
    if "classifier" not in groups:
        return "the head (classifier) counts as one of the last groups"
    if len(groups) != len(expected):
        return "last=3 unfreezes the last three groups, the head among them"
    return "use the names as layer_groups gives them (features.0, ..., classifier)"


def _learning_rates(context, lrs):
    if not isinstance(lrs, list | tuple) or not all(
        isinstance(v, int | float | np.floating) and not isinstance(v, bool) for v in lrs
    ):
        return "give a list of numbers (learning rates), such as [1e-3, ...]"
    model = transfer.unfreeze(transfer.freeze(resnet.small_resnet(4)), last=3)
    expected = [g["lr"] for g in transfer.discriminative_param_groups(model, 1e-3, factor=0.1)]
    if len(lrs) == len(transfer.layer_groups(model)):
        return "frozen groups get no learning rate: only the trainable ones are listed"
    if len(lrs) != len(expected):
        return "give one learning rate per trainable group"
    if np.allclose(lrs, expected, rtol=1e-6, atol=0):
        return None
    if np.allclose(lrs[::-1], expected, rtol=1e-6, atol=0):
        return "in order from the input to the head: the head's rate comes last"
    return "the head gets 1e-3, and each group below it 0.1 times the rate of the group above"


# The digest of each scenario's answer, in order.
_STRATEGIES = ("3f851129d60743ec", "566a728ffb710d42")
_OPTIONS = ("feature extraction", "fine-tuning")


def _strategies(context, choices):
    if not isinstance(choices, list | tuple) or len(choices) != len(_STRATEGIES):
        return f"give a list of {len(_STRATEGIES)} answers, one per scenario, in order"
    if not all(isinstance(c, str) and c.strip().lower() in _OPTIONS for c in choices):
        return 'each answer is "feature extraction" or "fine-tuning"'
    if digest(choices[0]) != _STRATEGIES[0]:
        return "scenario 1: few labels, and images like ImageNet's: how much should train?"
    if digest(choices[1]) != _STRATEGIES[1]:
        return "scenario 2: many labels, and images unlike ImageNet's: can frozen features do?"
    return None


def _key(*parts) -> str:
    """A fingerprint of a run's inputs (tensors by their bytes), to cache the judge's runs."""
    h = hashlib.sha256()
    for part in parts:
        tensors = part.values() if isinstance(part, dict) else [part]
        for t in tensors:
            if isinstance(t, torch.Tensor):
                h.update(t.detach().cpu().contiguous().numpy().tobytes())
            else:
                h.update(repr(t).encode())
    return h.hexdigest()


_RUNS: dict[str, tuple[float, int]] = {}
_STATS = {"mean": data.CIFAR10_MEAN, "std": data.CIFAR10_STD}


def feature_extraction_val(context: dict, domain: str, *, hook: bool) -> tuple[float, int]:
    """Section 5.5's feature extraction on ``domain`` (seed 0, ``k_main`` labelled images
    per class, the learning rate it chose, ``steps`` steps), frozen with ``transfer.freeze``
    (``hook=True``, as the chapter does) or with ``requires_grad_(False)`` alone: the
    validation accuracy and the number of BN layers whose running mean moved."""
    pool, val_set, _, num_classes = context["domains"][domain]
    state = context["pretrained_state"]
    lr = context["chosen_lr"][domain, "feature extraction"]
    k, n_steps, batch_size = context["k_main"], context["steps"], context["batch_size"]
    key = _key(state, *pool, *val_set, domain, lr, k, n_steps, batch_size, hook)
    if key in _RUNS:
        return _RUNS[key]
    seed = 0
    # the chapter's subset(pool, k, seed): k images of every class, in an order the seed fixes
    images, labels = pool
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    index = torch.cat([order[labels[order] == c][:k] for c in labels.unique()])
    train_set = images[index], labels[index]
    # the chapter's run_strategy, feature extraction
    config.seed_everything(seed)
    model = resnet.small_resnet(state["head.2.weight"].shape[0])
    model.load_state_dict(state)
    transfer.replace_head(model, num_classes)
    loader = data.TensorLoader(
        *train_set,
        batch_size=min(batch_size, len(train_set[1])),
        shuffle=True,
        augment=data.random_crop,
        seed=seed,
        split="train",
        **_STATS,
    )
    transfer.unfreeze(transfer.freeze(model) if hook else model.requires_grad_(False), last=1)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    before = [bn.running_mean.clone() for bn in bns]
    head = [p for p in model.parameters() if p.requires_grad]
    train.fit(
        model,
        train.Steps(loader, n_steps),
        epochs=1,
        optimizer=torch.optim.AdamW(head, lr),
        scheduler="cosine",
        progress=False,
        verbose=False,
    )
    moved = sum(not torch.equal(b, bn.running_mean) for b, bn in zip(before, bns, strict=True))
    val_loader = data.TensorLoader(*val_set, batch_size=500, split="val", **_STATS)
    accuracy = metrics.accuracy(metrics.predict(model, val_loader).logits, val_set[1])
    _RUNS[key] = (accuracy, moved)
    return _RUNS[key]


def _free_bn(context, moved_ex5, val_ex5):
    domains = list(context["domains"])
    if not is_integer(moved_ex5):
        return "moved_ex5: a whole number of BN layers"
    if not isinstance(val_ex5, dict) or sorted(val_ex5) != sorted(domains):
        return "val_ex5: a dict with one validation accuracy for each target in `domains`"
    for domain in domains:
        value = val_ex5[domain]
        if not isinstance(value, int | float | np.floating) or not 0 <= value <= 1:
            return "val_ex5: each accuracy is a number between 0 and 1 (not a percentage)"
    runs = {d: feature_extraction_val(context, d, hook=False) for d in domains}
    moved = runs[domains[0]][1]
    if int(moved_ex5) == 0:
        return (
            "moved_ex5: with transfer.freeze no statistic moves; freeze with "
            "requires_grad_(False) alone, then unfreeze the head"
        )
    if int(moved_ex5) != moved:
        return "moved_ex5: count the BN layers whose running_mean changed during training"
    for domain in domains:
        # a few images either way: another process or device may round a prediction apart
        if not close(val_ex5[domain], runs[domain][0], atol=0.01):
            frozen = feature_extraction_val(context, domain, hook=True)[0]
            if close(val_ex5[domain], frozen, atol=1e-6):
                return (
                    f"val_ex5[{domain!r}]: that is the frozen-BN run; with requires_grad_(False) "
                    "alone the BN statistics follow the target images"
                )
            return (
                f"val_ex5[{domain!r}]: train as run_strategy does for feature extraction (seed "
                "0, subset of k_main per class, the learning rate chosen for it, steps steps), "
                "changing only how the network is frozen"
            )
    return None


EXERCISES = [
    Exercise(
        "5.1",
        "count the head",
        1,
        ("n_trainable",),
        _head_count,
        "the number equals the trainable parameters of EfficientNet-B0 for 37 classes after "
        "freeze and unfreeze(last=1); no call may count parameters",
        forbidden=PARAMETER_COUNTERS,
    ),
    Exercise(
        "5.2",
        "which groups train?",
        1,
        ("groups_ex2",),
        _groups,
        "the list equals trainable_groups of that EfficientNet-B0 after unfreeze(last=3); "
        "trainable_groups may not be called",
        forbidden=("trainable_groups", "parameters", "named_parameters"),
    ),
    Exercise(
        "5.3",
        "predict the learning rates",
        2,
        ("lrs_ex3",),
        _learning_rates,
        "the list equals the learning rates of discriminative_param_groups(model, 1e-3, "
        "factor=0.1) for small_resnet(4) with its last three groups unfrozen, which may not "
        "be called",
        forbidden=("discriminative_param_groups", "finetune_optimizer"),
    ),
    Exercise(
        "5.4",
        "pick a strategy",
        2,
        ("choices_ex4",),
        _strategies,
        "each scenario's answer is checked against a fingerprint",
    ),
    Exercise(
        "5.5",
        "let the BN statistics follow the target",
        3,
        ("moved_ex5", "val_ex5"),
        _free_bn,
        "the judge re-runs section 5.5's feature extraction on both targets (seed 0), frozen "
        "with requires_grad_(False) alone: the number of BN layers whose statistics moved, "
        "and each validation accuracy within 0.01",
        context=("pretrained_state", "domains", "chosen_lr", "k_main", "steps", "batch_size"),
    ),
]
