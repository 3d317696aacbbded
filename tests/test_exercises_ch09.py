"""Chapter 9's exercises: the solution passes, plausible wrong answers fail."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from exercise_cases import Case, assert_case

from imgcls_helpers import zeroshot


def _clusters(n_per_class: int, seed: int, centres: torch.Tensor):
    """Unit-length features around one centre per class, and their labels."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(len(centres)).repeat_interleave(n_per_class)
    noisy = centres[labels] + 0.9 * torch.randn(len(labels), centres.shape[1], generator=generator)
    return F.normalize(noisy, dim=-1), labels.numpy()


@pytest.fixture(scope="module")
def context():
    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(8, 16, generator=generator)
    train_f, train_y = _clusters(30, 1, centres)
    test_f, test_y = _clusters(30, 2, centres)
    # prompts that point roughly, not exactly, at the class centres: zero-shot is good but
    # beatable with enough labels
    weights = F.normalize(centres + 0.8 * torch.randn(8, 16, generator=generator), dim=-1)
    return {
        "u": torch.tensor([1.0, 2.0, 2.0]),
        "v": torch.tensor([2.0, 0.0, 1.0]),
        "toy_image": torch.tensor([0.9, 0.1, 0.4]),
        "toy_prompts": torch.tensor([[1.0, 0.2, 0.5], [2.0, 0.0, 1.0], [0.9, 0.3, 0.2]]),
        "flower_classes": ["daisy", "rose", "sunflower"],
        "flower_templates": ["a photo of a {}.", "a {} in a garden.", "a close-up of a {}."],
        "template_embeddings": torch.tensor(
            [[0.2, 0.1, 0.0, 0.1], [0.1, 0.3, 0.1, 0.0], [4.0, -1.0, 2.0, 3.0]]
        ),
        "tiny_train_features": train_f,
        "train_shape": train_y,
        "seen_features": test_f,
        "seen_shape": test_y,
        "shape_weights": weights,
    }


def _info_nce(image_emb, text_emb, logit_scale):
    image, text = F.normalize(image_emb, dim=-1), F.normalize(text_emb, dim=-1)
    logits = logit_scale.exp() * image @ text.T
    targets = torch.arange(len(logits))
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def _one_direction(image_emb, text_emb, logit_scale):
    image, text = F.normalize(image_emb, dim=-1), F.normalize(text_emb, dim=-1)
    logits = logit_scale.exp() * image @ text.T
    return F.cross_entropy(logits, torch.arange(len(logits)))


def _not_normalised(image_emb, text_emb, logit_scale):
    logits = logit_scale.exp() * image_emb @ text_emb.T
    targets = torch.arange(len(logits))
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def _not_exponentiated(image_emb, text_emb, logit_scale):
    image, text = F.normalize(image_emb, dim=-1), F.normalize(text_emb, dim=-1)
    logits = logit_scale * image @ text.T
    targets = torch.arange(len(logits))
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def _detached_scale(image_emb, text_emb, logit_scale):
    image, text = F.normalize(image_emb, dim=-1), F.normalize(text_emb, dim=-1)
    logits = math.exp(logit_scale.item()) * image @ text.T
    targets = torch.arange(len(logits))
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def _curve(context, draws=(0, 1, 2)):
    train_f, train_y = context["tiny_train_features"], context["train_shape"]
    curve = []
    for k in range(1, 17):
        accuracies = []
        for seed in draws:
            index = zeroshot.few_shot_indices(train_y, k, seed=seed)
            accuracies.append(
                zeroshot.linear_probe(
                    train_f[index], train_y[index], context["seen_features"], context["seen_shape"]
                )
            )
        curve.append(float(np.mean(accuracies)))
    return curve


def _smallest_k(context, curve):
    logits = zeroshot.zero_shot_logits(context["seen_features"], context["shape_weights"])
    zero_shot = float((logits.argmax(1).numpy() == context["seen_shape"]).mean())
    return next((k for k, acc in enumerate(curve, start=1) if acc > zero_shot), 0)


@pytest.fixture(scope="module")
def curves(context):
    """The right curve and the one-draw curve (64 probes): computed once for the module."""
    return _curve(context), _curve(context, draws=(0,))


def cases(context, curves):
    u, v = context["u"], context["v"]
    cosine = float((u * v).sum() / (u.norm() * v.norm()))
    image, prompts = context["toy_image"], context["toy_prompts"]
    cosines = F.normalize(prompts, dim=1) @ F.normalize(image, dim=0)
    classes, templates = context["flower_classes"], context["flower_templates"]
    prompts_ex3 = [[t.format(c) for t in templates] for c in classes]
    rows = context["template_embeddings"]
    unit_mean = (rows / rows.norm(dim=1, keepdim=True)).mean(0)
    curve, one_draw = curves
    smallest = _smallest_k(context, curve)
    assert smallest > 1, "the test data should cross zero-shot after k = 1"
    return {
        "9.1": Case(
            (cosine,),
            {
                "the dot product": (float((u * v).sum()),),
                "divided by squared lengths": (float((u * v).sum() / (u @ u * (v @ v))),),
                "zero": (0.0,),
                "text": ("0.6",),
            },
            forbidden="cos_ex1 = F.cosine_similarity(u, v, dim=0)",
        ),
        "9.2": Case(
            ((100 * cosines).softmax(0),),
            {
                "scale 1": (cosines.softmax(0),),
                "not normalised": ((100 * prompts @ image).softmax(0),),
                "logits": (100 * cosines,),
                "uniform": (torch.full((3,), 1 / 3),),
                "one-hot on the wrong class": (torch.tensor([0.0, 1.0, 0.0]),),
            },
            forbidden="probs_ex2 = (100 * F.normalize(toy_prompts, dim=1) @ image).softmax(0)",
        ),
        "9.3": Case(
            (prompts_ex3,),
            {
                "one list per template": ([list(r) for r in zip(*prompts_ex3, strict=True)],),
                "flat": ([p for row in prompts_ex3 for p in row],),
                "bare class names": ([[c] * len(templates) for c in classes],),
                "a string": ("a photo of a daisy.",),
            },
            forbidden="prompts_ex3 = zeroshot.build_prompts(flower_classes, flower_templates)",
        ),
        "9.4": Case(
            (unit_mean / unit_mean.norm(),),
            {
                "plain mean": (rows.mean(0) / rows.mean(0).norm(),),
                "not normalised again": (unit_mean,),
                "columns normalised": (F.normalize(F.normalize(rows, dim=0).mean(0), dim=0),),
                "a random unit vector": (F.normalize(torch.randn(4), dim=0),),
            },
            forbidden="class_vector_ex4 = F.normalize(template_embeddings.mean(0), dim=0)",
        ),
        "9.5": Case(
            (_info_nce,),
            {
                "one direction only": (_one_direction,),
                "no normalisation": (_not_normalised,),
                "scale not exponentiated": (_not_exponentiated,),
                "scale detached with .item()": (_detached_scale,),
                "log(B), whatever the input": (lambda a, b, s: torch.tensor(math.log(len(a))),),
                "a number": (1.79,),
            },
            forbidden="def info_nce(a, b, s):\n    return contrastive.clip_loss(a, b, s.exp())",
        ),
        "9.6": Case(
            (curve, smallest),
            {
                "one draw only": (one_draw, smallest),
                "k counted from 0": (curve, smallest - 1),
                "the last k": (curve, 16),
                "zeros": ([0.0] * 16, 0),
                "a short curve": (curve[:5], smallest),
            },
        ),
    }


@pytest.mark.parametrize("exercise_id", ["9.1", "9.2", "9.3", "9.4", "9.5", "9.6"])
def test_exercise(context, curves, exercise_id):
    assert_case(exercise_id, cases(context, curves)[exercise_id], context)
