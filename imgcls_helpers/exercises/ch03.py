"""Chapter 3, a CNN from scratch: the judges of its exercises."""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data import CIFAR10_MEAN, CIFAR10_STD, TensorLoader
from ..labs import PARAMETER_COUNTERS, Exercise, as_array, close, is_integer, one_thread
from ..models import TwoConvNet


def _whole_number(value) -> bool:
    return is_integer(value) and not isinstance(value, bool)


def _stem_sizes(context, stem_conv_size, stem_pool_size):
    if not (_whole_number(stem_conv_size) and _whole_number(stem_pool_size)):
        return "give two whole numbers (ints): one height after each layer"
    # The judge runs the layers themselves, on the "meta" device: shapes without arithmetic,
    # and no draw from the notebook's random generator.
    conv = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, device="meta")
    pool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
    after_conv = conv(torch.zeros(1, 3, 224, 224, device="meta"))
    after_pool = pool(after_conv)
    conv_size, pool_size = after_conv.shape[-1], after_pool.shape[-1]
    if int(stem_conv_size) != conv_size:
        if int(stem_conv_size) == (224 - 7) // 2 + 1:
            return "stem_conv_size: the convolution has padding 3, on both sides"
        if int(stem_conv_size) == -(-(224 + 2 * 3 - 7) // 2) + 1:
            return "stem_conv_size: the formula takes the floor, not the ceiling"
        return "stem_conv_size: floor((n + 2p - k) / s) + 1 with n = 224, k = 7, s = 2, p = 3"
    if int(stem_pool_size) != pool_size:
        if int(stem_pool_size) == (224 + 2 * 1 - 3) // 2 + 1:
            return "stem_pool_size: the pooling's input is the convolution's output, not 224"
        return "stem_pool_size: the same formula, with the pooling's k, s, p and n = its input"
    return None


def _conv2_params(context, conv2_params):
    if not _whole_number(conv2_params):
        return "give one whole number (an int)"
    layer = nn.Conv2d(6, 16, kernel_size=5, device="meta")  # a real layer's tensor sizes
    weights, biases = layer.weight.numel(), layer.bias.numel()
    if int(conv2_params) == weights + biases:
        return None
    if int(conv2_params) == weights:
        return "those are the weights only: add one bias per output channel"
    if int(conv2_params) == 16 * 5 * 5 + 16:
        return "each of the 16 filters spans all 6 input channels"
    return "one weight per (output channel, input channel, kernel row, kernel column), plus biases"


def _reference_step(model, optimizer, images, labels):
    optimizer.zero_grad()
    loss = F.cross_entropy(model(images), labels)
    loss.backward()
    optimizer.step()
    return loss.item()


def _same_weights(a: nn.Module, b: nn.Module, atol: float = 1e-5) -> bool:
    return all(
        torch.allclose(p, q, atol=atol, rtol=0)
        for p, q in zip(a.parameters(), b.parameters(), strict=True)
    )


def _fixed_step(context, fixed_step):
    if not callable(fixed_step):
        return "fixed_step must be a function: def fixed_step(model, optimizer, images, labels)"
    # The judge's own seeded model and batch; fork_rng leaves the notebook's seed alone.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        start = TwoConvNet(10)
        images = torch.randn(16, 3, 32, 32)
        labels = torch.randint(0, 10, (16,))
    theirs, ours = copy.deepcopy(start), copy.deepcopy(start)
    their_optimizer = torch.optim.SGD(theirs.parameters(), lr=0.05)
    our_optimizer = torch.optim.SGD(ours.parameters(), lr=0.05)
    their_losses, our_losses = [], []
    with one_thread():
        for _ in range(15):
            their_losses.append(fixed_step(theirs, their_optimizer, images.clone(), labels.clone()))
            our_losses.append(_reference_step(ours, our_optimizer, images, labels))
    if _same_weights(theirs, start, atol=0):
        return "the weights never change: which line changes them, and are there gradients then?"
    if not _same_weights(theirs, ours):
        return (
            "the weights end up elsewhere than with train_step: are the old gradients cleared "
            "before each backward(), and does step() come after it?"
        )
    if not all(isinstance(loss, float) for loss in their_losses):
        return "fixed_step must return the loss as a plain float (loss.item())"
    if not close(their_losses, our_losses, atol=1e-5):
        return "fixed_step must return the loss of this batch, computed before the step"
    return None


_Z = (2.0, -1.0, 0.5, -3.0, 4.0)
_T = (1.0, 0.0, 0.0, 1.0, 1.0)
"""The logits and targets of exercise 3.4, as set in its cell."""


def _bce(context, bce_by_hand):
    value = as_array(bce_by_hand)
    if value.size != 1:
        return "one number: the mean over the five examples, not one loss per example"
    z, t = torch.tensor(_Z), torch.tensor(_T)
    expected = F.binary_cross_entropy_with_logits(z, t).item()
    value = float(value.reshape(()))
    if close(value, expected, atol=1e-5):
        return None
    if close(value, -expected, atol=1e-5):
        return "a loss is never negative: mind the minus sign"
    if close(value, len(_Z) * expected, atol=1e-4):
        return "that is the sum: take the mean over the five examples"
    return "p = torch.sigmoid(z); then -(t log p + (1 - t) log(1 - p)), averaged over the examples"


def _without_relu(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """TwoConvNet's forward pass with its four ReLUs left out."""
    x = model.pool(model.conv1(x))
    x = model.pool(model.conv2(x))
    return model.fc3(model.fc2(model.fc1(torch.flatten(x, 1))))


def _budget_accuracy(build, train_set, val_set, num_classes: int) -> float:
    """Exercise 3.5's measurement, redone by its judge: the validation accuracy of
    ``build(num_classes)`` after two epochs of Adam on ``train_set`` (batches of 16), from
    TwoConvNet's seeded starting weights, with a seeded batch order. It runs on the CPU in
    float64, so that the number does not depend on the machine or its number of threads."""
    torch.manual_seed(0)
    start = TwoConvNet(num_classes).state_dict()
    model = build(num_classes)
    model.load_state_dict(start)
    model = model.double()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    options = {"mean": CIFAR10_MEAN, "std": CIFAR10_STD, "device": "cpu"}
    train_loader = TensorLoader(*train_set, batch_size=16, shuffle=True, seed=0, **options)
    val_loader = TensorLoader(*val_set, batch_size=256, **options)
    model.train()
    for _epoch in range(2):
        for images, labels in train_loader:
            optimizer.zero_grad()
            F.cross_entropy(model(images.double()), labels).backward()
            optimizer.step()
    model.eval()
    correct = 0
    with torch.no_grad():
        for images, labels in val_loader:
            correct += (model(images.double()).argmax(dim=1) == labels).sum().item()
    return correct / len(val_loader.labels)


def _one_accuracy(name, value):
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        return f"{name}: give one number, an accuracy"
    if not 0 <= float(value) <= 1:
        return f"{name}: an accuracy between 0 and 1, not a percentage"
    return None


def _no_relu(context, no_relu_net, acc_with_relu, acc_without_relu):
    num_classes = context["num_classes"]
    if not callable(no_relu_net):
        return "no_relu_net: a class (or function) that builds the network from num_classes"
    model = no_relu_net(num_classes)
    if not isinstance(model, nn.Module):
        return "no_relu_net(num_classes) must build an nn.Module"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        original = TwoConvNet(num_classes).eval()
        probe = torch.randn(4, 3, 32, 32)
    try:
        model.load_state_dict(original.state_dict())
    except (RuntimeError, KeyError):
        return "keep TwoConvNet's layers and their names (subclass it and override forward)"
    with torch.no_grad():
        out = model.eval()(probe)
        if close(out, original(probe), atol=1e-5):
            return "your network gives TwoConvNet's outputs: its forward still applies the ReLUs"
        if not close(out, _without_relu(original, probe), atol=1e-5):
            return "remove the four ReLUs and change nothing else (same layers, same order)"
    for name, value in (("acc_with_relu", acc_with_relu), ("acc_without_relu", acc_without_relu)):
        problem = _one_accuracy(name, value)
        if problem:
            return problem
    train_set, val_set = context["budget_train"], context["budget_val"]
    # In float64 the run gives the same accuracy on any machine; one image of margin anyway.
    tolerance = 1 / len(val_set[1]) + 1e-9
    with torch.random.fork_rng(devices=[]), one_thread():
        want_with = _budget_accuracy(TwoConvNet, train_set, val_set, num_classes)
        want_without = _budget_accuracy(no_relu_net, train_set, val_set, num_classes)
    if not close(acc_with_relu, want_with, atol=tolerance):
        if close(acc_with_relu, want_without, atol=tolerance):
            return "acc_with_relu holds your network's accuracy: are the two answers swapped?"
        return "acc_with_relu: budget_accuracy(models.TwoConvNet), the original network"
    if not close(acc_without_relu, want_without, atol=tolerance):
        return "acc_without_relu: budget_accuracy(no_relu_net), the same budget for your network"
    return None


EXERCISES = [
    Exercise(
        "3.1",
        "the sizes of ResNet's stem",
        1,
        ("stem_conv_size", "stem_pool_size"),
        _stem_sizes,
        "both sizes equal those of the judge's own run of the two layers on a 224 x 224 "
        "input; the layers may not be run",
        forbidden=("Conv2d", "MaxPool2d", "conv2d", "max_pool2d", "layer_shapes"),
    ),
    Exercise(
        "3.2",
        "the parameters of conv2",
        1,
        ("conv2_params",),
        _conv2_params,
        "the number equals the size of a real Conv2d(6, 16, 5)'s weight and bias; parameters "
        "may not be counted by code, nor the layer's tensors read",
        forbidden=(*PARAMETER_COUNTERS, "weight", "bias"),
    ),
    Exercise(
        "3.3",
        "fix the training step",
        2,
        ("fixed_step",),
        _fixed_step,
        "15 steps of SGD on the judge's seeded model and batch end with the same weights and "
        "the same returned losses (floats) as the five-line step",
    ),
    Exercise(
        "3.4",
        "binary cross-entropy by hand",
        1,
        ("bce_by_hand",),
        _bce,
        "one number, equal to PyTorch's binary cross-entropy of the exercise's logits and "
        "targets within 1e-5; PyTorch's BCE functions may not be called",
        forbidden=(
            "binary_cross_entropy_with_logits",
            "binary_cross_entropy",
            "BCEWithLogitsLoss",
            "BCELoss",
            "logsigmoid",
            "LogSigmoid",
            "softplus",
            "cross_entropy",
            "CrossEntropyLoss",
        ),
    ),
    Exercise(
        "3.5",
        "what the ReLUs buy",
        3,
        ("no_relu_net", "acc_with_relu", "acc_without_relu"),
        _no_relu,
        "the network takes TwoConvNet's weights and computes its forward pass without the "
        "ReLUs; the judge re-trains both networks with the same seeded budget (float64, CPU) "
        "and compares the two accuracies",
        context=("budget_train", "budget_val", "num_classes"),
    ),
]
