"""Chapter 8's exercises: the solution passes, plausible wrong answers fail."""

from __future__ import annotations

import copy
import functools
import math

import pytest
import torch
import torch.nn.functional as F
from exercise_cases import Case, assert_case

from imgcls_helpers import labs, vit


@pytest.fixture(scope="module")
def context():
    torch.manual_seed(1)
    model = vit.SmallViT(10, patch_size=4, dim=16, depth=3, heads=2)
    _, maps = vit.attention_maps(model, torch.randn(3, 3, 32, 32))
    return {"maps": maps}


# ------------------------------------------------------------------------ rollouts


def _rollout(attentions, *, identity=True, renormalise=True, later_on_left=True, last=False):
    """The solution, and each usual mistake when a flag is changed."""
    if last:
        attentions = attentions[-1:]
    result = None
    for layer in attentions:
        a = layer.float().mean(dim=1)
        if identity:
            a = a + torch.eye(a.shape[-1])
        if renormalise:
            a = a / a.sum(dim=-1, keepdim=True)
        if result is not None:
            a = a @ result if later_on_left else result @ a
        result = a
    return result


def _per_head_rollout(attentions):
    """Rollout of each head on its own, averaged at the end: not the recipe."""
    heads = attentions[0].shape[1]
    per_head = [_rollout([m[:, h : h + 1] for m in attentions]) for h in range(heads)]
    return torch.stack(per_head).mean(0)


# ------------------------------------------------------------ shuffles and the probe ViT


def _shuffle(images, order, patch_size=4):
    columns = F.unfold(images, kernel_size=patch_size, stride=patch_size)
    return F.fold(columns[:, :, order], images.shape[-2:], patch_size, stride=patch_size)


def _inverse_shuffle(images, order, patch_size=4):
    return _shuffle(images, torch.argsort(order), patch_size)


def _shuffle_by_reshape(images, order, patch_size=4):
    """Another right answer, without unfold: reshape into a grid of patches."""
    b, c, h, w = images.shape
    g, p = h // patch_size, patch_size
    grid = images.reshape(b, c, g, p, g, p).permute(0, 2, 4, 1, 3, 5).reshape(b, g * g, c, p, p)
    grid = grid[:, order].reshape(b, g, g, c, p, p).permute(0, 3, 1, 4, 2, 5)
    return grid.reshape(b, c, h, w)


def _shuffle_fixed_four(images, order, patch_size=4):
    return _shuffle(images, order, 4)


def _probe():
    torch.manual_seed(0)
    model = vit.SmallViT(10, patch_size=4, dim=48, depth=3, heads=4, mlp_ratio=2).eval()
    images = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    order = torch.randperm(64, generator=torch.Generator().manual_seed(1))
    return model, images, order


def _without_positions(model):
    copied = copy.deepcopy(model)
    with torch.no_grad():
        copied.embed.pos_embedding.zero_()
    return copied


def _gap(model, images, shuffled):
    with torch.no_grad():
        return (model(images) - model(shuffled)).abs().max().item()


def cases(context):
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    k = torch.tensor([[1.0, 1.0], [0.0, 2.0]])
    scores = q @ k.T / math.sqrt(2)
    weights = scores.exp() / scores.exp().sum(dim=1, keepdim=True)

    probe, images, order = _probe()
    no_pos = _without_positions(probe)
    shuffled = _shuffle(images, order)
    gap_with, gap_without = _gap(probe, images, shuffled), _gap(no_pos, images, shuffled)
    inverse = _inverse_shuffle(images, order)
    solution = (_shuffle, no_pos, gap_with, gap_without)
    in_place = _probe()[0]
    with torch.no_grad():
        in_place.embed.pos_embedding.zero_()
    other_seed = vit.SmallViT(10, patch_size=4, dim=48, depth=3, heads=4, mlp_ratio=2).eval()
    with torch.no_grad():
        other_seed.embed.pos_embedding.zero_()

    return {
        "8.1": Case(
            (256, 257),
            {
                "forgot the class token": (256, 256),
                "patches along one side": (16, 17),
                "16 x 16 patches of ViT-B/16": (196, 197),
                "swapped": (257, 256),
                "class token counted twice": (256, 258),
                "text": ("256", "257"),
            },
            forbidden="seq_len_ex1 = vit.ViTEmbedding(224, 14, dim=8)(x).shape[1]",
        ),
        "8.2": Case(
            (weights,),
            {
                "not scaled by sqrt(2)": (torch.softmax(q @ k.T, dim=-1),),
                "normalised over columns": (torch.softmax(scores, dim=0),),
                "the scores themselves": (scores,),
                "uniform": (torch.full((2, 2), 0.5),),
                "a list": (weights.tolist(),),
            },
            forbidden="weights_ex2 = F.softmax(q_ex2 @ k_ex2.T / math.sqrt(2), dim=-1)",
        ),
        "8.3": Case(
            (_rollout,),
            {
                "no identity added": (lambda m: _rollout(m, identity=False),),
                "no renormalisation": (lambda m: _rollout(m, renormalise=False),),
                "multiplied in the wrong order": (lambda m: _rollout(m, later_on_left=False),),
                "the last layer only": (lambda m: _rollout(m, last=True),),
                "the first three layers only (as many as in the chapter)": (
                    lambda m: _rollout(m[:3]),
                ),
                "each head rolled out on its own": (_per_head_rollout,),
                "identity matrices": (
                    lambda m: torch.eye(m[0].shape[-1]).expand(len(m[0]), -1, -1),
                ),
                "uniform rows": (lambda m: torch.full(m[0].mean(1).shape, 1 / m[0].shape[-1]),),
                "a tensor, not a function": (_rollout(context["maps"]),),
                "the helper, assigned rather than called": (vit.attention_rollout,),
                "the helper, wrapped in partial": (
                    functools.partial(vit.attention_rollout, residual=True),
                ),
            },
            forbidden=(
                "def my_rollout(attentions):\n    return vit.attention_rollout(attentions)\n"
            ),
        ),
        "8.4": Case(
            solution,
            {
                "inverse shuffle": (_inverse_shuffle, no_pos, _gap(probe, images, inverse), 0.0),
                "patch size ignored": (_shuffle_fixed_four, no_pos, gap_with, gap_without),
                "identity instead of a shuffle": (
                    lambda x, order, patch_size=4: x,
                    no_pos,
                    gap_with,
                    gap_without,
                ),
                "positions kept": (_shuffle, probe, gap_with, gap_without),
                "zeroed probe_vit in place, measured after": (
                    _shuffle,
                    in_place,
                    _gap(in_place, images, shuffled),
                    gap_without,
                ),
                "another seed": (_shuffle, other_seed, gap_with, gap_without),
                "gap measured with the inverse shuffle": (
                    _shuffle,
                    no_pos,
                    _gap(probe, images, inverse),
                    gap_without,
                ),
                "gaps swapped": (_shuffle, no_pos, gap_without, gap_with),
                "both gaps measured with probe_vit": (_shuffle, no_pos, gap_with, gap_with),
                "zeros": (_shuffle, no_pos, 0.0, 0.0),
                "text": (_shuffle, no_pos, str(gap_with), str(gap_without)),
            },
        ),
    }


@pytest.fixture(scope="module")
def all_cases(context):
    return cases(context)


def test_shuffle_by_reshape_is_also_right(context):
    """A solution without unfold passes too: the check compares values, not code."""
    probe, images, order = _probe()
    no_pos = _without_positions(probe)
    shuffled = _shuffle_by_reshape(images, order)
    answers = (_shuffle_by_reshape, no_pos, _gap(probe, images, shuffled), 0.0)
    exercise = labs.exercise("8.4")
    right = labs.verdict(exercise, dict(zip(exercise.answers, answers, strict=True)), context)
    assert right.status == "correct", right.message


@pytest.mark.parametrize("exercise_id", ["8.1", "8.2", "8.3", "8.4"])
def test_exercise(context, all_cases, exercise_id):
    assert_case(exercise_id, all_cases[exercise_id], context)
