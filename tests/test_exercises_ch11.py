"""Chapter 11's exercises: the solution passes, plausible wrong answers fail."""

from __future__ import annotations

import exercise_cases
import numpy as np
import pytest
import torch
from exercise_cases import Case, assert_case

from imgcls_helpers import labs

CONTRAST = (0.4, 0.3, 0.2, 0.1, 0.05)  # ImageNet-C's factors, severity 1..5


@pytest.fixture(scope="module")
def context():
    """The exercises' data, as the chapter's student cells define it."""
    generator = torch.Generator().manual_seed(3)
    tints = torch.tensor([[200, 60, 30], [20, 120, 220], [90, 200, 90], [240, 230, 20]])
    noise = torch.randint(-40, 41, (4, 3, 16, 16), generator=generator)
    torch.manual_seed(0)
    tiny = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(4, 3),
    )
    return {
        "classes_ex1": ["bowl", "mug", "plate", "teapot"],
        "counts_ex1": {"mug": 412, "plate": 380, "bowl": 295, "teapot": 38},
        "probs_ex2": torch.tensor(
            [
                [0.90, 0.05, 0.05],
                [0.80, 0.15, 0.05],
                [0.20, 0.75, 0.05],
                [0.60, 0.10, 0.30],
                [0.10, 0.85, 0.05],
                [0.05, 0.72, 0.23],
                [0.45, 0.40, 0.15],
                [0.10, 0.10, 0.80],
                [0.05, 0.25, 0.70],
                [0.70, 0.05, 0.25],
                [0.10, 0.15, 0.75],
                [0.05, 0.62, 0.33],
            ]
        ),
        "labels_ex2": torch.tensor([0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 1, 2]),
        "images_ex3": (tints[:, :, None, None] + noise).clamp(0, 255).to(torch.uint8),
        "severity_ex3": 3,
        "seconds_ex4": {
            "batch 1": [0.0412, 0.0125, 0.0062, 0.0059, 0.0064, 0.0060, 0.0091, 0.0058, 0.0063],
            "batch 32": [0.3120, 0.0950, 0.0610, 0.0598, 0.0605, 0.0640, 0.0601, 0.0795, 0.0603],
        },
        "warmup_ex4": 2,
        "tiny_ex5": tiny,
        "image_ex5": torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(1)),
        "target_ex5": 2,
    }


def _contrast(images, factor, dims=(2, 3)):
    x = images.double() / 255
    mean = x.mean(dim=dims, keepdim=True)
    return (((x - mean) * factor + mean).clamp(0, 1) * 255).round().to(torch.uint8)


def _cam(maps, alpha, relu=True, normalise=True):
    cam = (alpha[:, None, None] * maps).sum(dim=0)
    cam = cam.clamp(min=0) if relu else cam
    return cam / cam.abs().max() if normalise else cam


def cases(context):
    # 11.1: 1125 images over 4 classes; the weight of class c is 1125 / (4 n_c)
    n = np.array([295, 412, 380, 38], dtype=np.float64)  # bowl, mug, plate, teapot
    balanced = n.sum() / (4 * n)
    in_dict_order = n.sum() / (4 * np.array([412, 380, 295, 38]))

    # 11.2: per class, the mean probability over the examples labelled with it
    thresholds = [(0.9 + 0.8 + 0.2 + 0.6) / 4, (0.85 + 0.72 + 0.40 + 0.15) / 4, 0.52]
    column_means = context["probs_ex2"].mean(dim=0)
    # confident in another class than their label: 2 (dog 0.75), 9 (cat 0.70), 10 (fox 0.75),
    # 11 (dog 0.62), ranked by the probability of their own label: 0.15, 0.20, 0.25, 0.33
    suspects = [10, 2, 9, 11]
    argmax_wrong = [2, 6, 9, 10, 11]  # 6 is confident in no class: not a suspect

    # 11.3: severity 3 is the third factor; means per channel of each image
    images = context["images_ex3"]
    contrasted = _contrast(images, CONTRAST[2])

    # 11.4: medians of the 7 timed runs: 6.2 ms and 60.5 ms (per batch of 32)
    ms_1, ms_32 = 6.2, 60.5 / 32

    # 11.5: after global average pooling, d score / d A_k = W[target, k] / 64 everywhere
    tiny, target = context["tiny_ex5"], context["target_ex5"]
    with torch.no_grad():
        conv = tiny[0](context["image_ex5"])[0]
        maps = conv.relu()
    weight = tiny[4].weight.detach()
    cam = _cam(maps, weight[target] / 64)
    return {
        "11.1": Case(
            (balanced.tolist(),),
            {
                "one over the count": (1 / n,),
                "the share of images": (n / n.sum(),),
                "normalised to sum to 1": (balanced / balanced.sum(),),
                "in the order of counts_ex1": (in_dict_order,),
                "without the number of classes": (n.sum() / n,),
                "a dict": ({"bowl": 0.95, "mug": 0.68, "plate": 0.74, "teapot": 7.4},),
                "all ones": ([1.0, 1.0, 1.0, 1.0],),
            },
            forbidden="weights_ex1 = ownimages.class_weights(targets, 4)",
        ),
        "11.2": Case(
            (torch.tensor(thresholds), suspects),
            {
                "thresholds over all examples": (column_means, suspects),
                "argmax is not the label": (thresholds, argmax_wrong),
                "not ranked": (thresholds, sorted(suspects)),
                "most confident first": (thresholds, suspects[::-1]),
                "no suspects": (thresholds, []),
            },
            forbidden="suspects_ex2 = explain.label_issues(probs_ex2, labels_ex2).tolist()",
        ),
        "11.3": Case(
            (contrasted,),
            {
                "one mean per image": (_contrast(images, CONTRAST[2], (1, 2, 3)),),
                "one mean per batch": (_contrast(images, CONTRAST[2], (0, 2, 3)),),
                "severity 2's factor": (_contrast(images, CONTRAST[1]),),
                "severity 4's factor": (_contrast(images, CONTRAST[3]),),
                "floats in [0, 1]": (contrasted.float() / 255,),
                "the images unchanged": (images.clone(),),
                "one image": (contrasted[0],),
            },
            forbidden="contrasted = robustness.corrupt(images_ex3, 'contrast', severity_ex3)",
        ),
        "11.4": Case(
            (ms_1, ms_32, ms_1 / ms_32),
            {
                "the mean": (
                    np.mean([6.2, 5.9, 6.4, 6.0, 9.1, 5.8, 6.3]),
                    ms_32,
                    ms_1 / ms_32,
                ),
                "per batch, not per image": (ms_1, 60.5, ms_1 / 60.5),
                "warm-up kept": (6.3, ms_32, 6.3 / ms_32),
                "speedup upside down": (ms_1, ms_32, ms_32 / ms_1),
                "in seconds": (ms_1 / 1000, ms_32, ms_1 / ms_32),
                "a string": ("6.2", ms_32, ms_1 / ms_32),
            },
        ),
        "11.5": Case(
            (cam,),
            {
                "no ReLU": (_cam(maps, weight[target], relu=False),),
                "not normalised": (_cam(maps, weight[target] / 64, normalise=False),),
                "another class": (_cam(maps, weight[0]),),
                "the convolution's output": (_cam(conv, weight[target]),),
                "upside down": (cam.flip(0),),
                "the wrong size": (cam[:4, :4],),
            },
            forbidden="cam = explain.grad_cam(tiny_ex5, tiny_ex5[1], image_ex5, [2])[0]",
        ),
    }


@pytest.fixture(scope="module")
def all_cases(context):
    return cases(context)


@pytest.mark.parametrize("exercise_id", ["11.1", "11.2", "11.3", "11.4", "11.5"])
def test_exercise(context, all_cases, exercise_id):
    assert_case(exercise_id, all_cases[exercise_id], context)


def test_specific_hints(context, all_cases):
    """The common mistakes get their own hint."""

    def hint(exercise_id, name):
        return exercise_cases.hint(exercise_id, all_cases[exercise_id], name, context)

    assert "scale" in hint("11.1", "one over the count")
    assert "rare class" in hint("11.1", "the share of images")
    assert "normalise" in hint("11.1", "normalised to sum to 1")
    assert "order of classes_ex1" in hint("11.1", "in the order of counts_ex1")
    assert "number of classes" in hint("11.1", "without the number of classes")
    assert "list or tensor" in hint("11.1", "a dict")
    assert "labelled j" in hint("11.2", "thresholds over all examples")
    assert "confident in no class" in hint("11.2", "argmax is not the label")
    assert "lowest first" in hint("11.2", "not ranked")
    assert "lowest first" in hint("11.2", "most confident first")
    assert "each channel" in hint("11.3", "one mean per image")
    assert "whole batch" in hint("11.3", "one mean per batch")
    assert "s-th factor" in hint("11.3", "severity 2's factor")
    assert "s-th factor" in hint("11.3", "severity 4's factor")
    assert "uint8" in hint("11.3", "floats in [0, 1]")
    assert "median, not the mean" in hint("11.4", "the mean")
    assert "per image" in hint("11.4", "per batch, not per image")
    assert "warm-up" in hint("11.4", "warm-up kept")
    assert "above 1" in hint("11.4", "speedup upside down")
    assert "milliseconds" in hint("11.4", "in seconds")
    assert "ReLU to the sum" in hint("11.5", "no ReLU")
    assert "maximum" in hint("11.5", "not normalised")
    assert "target_ex5" in hint("11.5", "another class")
    assert "ReLU's output" in hint("11.5", "the convolution's output")


def test_the_hints_never_give_the_answer_away(context, all_cases):
    """No hint prints an expected number: the weights, thresholds, indices or timings."""
    secrets = ["0.953", "0.683", "0.740", "7.40", "0.625", "0.53", "10, 2, 9, 11", "6.2", "1.89"]
    for exercise_id, case in all_cases.items():
        exercise = labs.exercise(exercise_id)
        for values in case.wrong.values():
            answers = dict(zip(exercise.answers, values, strict=True))
            message = labs.verdict(exercise, answers, context).message
            assert not any(secret in message for secret in secrets), message


def test_a_grad_cam_from_autograd_passes_like_the_shortcut(context):
    """The judge accepts the general method (gradients from autograd), not only W / 64."""
    tiny, image, target = context["tiny_ex5"], context["image_ex5"], context["target_ex5"]
    maps = tiny[:2](image)
    (gradient,) = torch.autograd.grad(tiny[2:](maps)[0, target], maps)
    cam = _cam(maps[0].detach(), gradient[0].mean(dim=(1, 2)))
    exercise = labs.exercise("11.5")
    assert labs.verdict(exercise, {"cam": cam}, context).status == "correct"
    assert labs.verdict(exercise, {"cam": cam.numpy()[None]}, context).status == "correct"


def test_the_exercise_data_tells_the_mistakes_apart(context):
    """The data is chosen so that each mistake gives a different answer: the images' channel
    means differ within each image, and a photo's argmax differs from its label without
    being a suspect."""
    images = context["images_ex3"].double()
    per_channel = images.mean(dim=(2, 3))
    assert (per_channel.max(dim=1).values - per_channel.min(dim=1).values).min() > 50
    probs = context["probs_ex2"]
    assert probs[6].argmax() != context["labels_ex2"][6]
