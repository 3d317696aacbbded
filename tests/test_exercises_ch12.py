"""Chapter 12's exercises: the solution passes, plausible wrong answers fail."""

from __future__ import annotations

import math

import exercise_cases
import pytest
import torch
from exercise_cases import Case, assert_case

from imgcls_helpers import models, synthetic
from imgcls_helpers.exercises.ch12 import InDtype, train_like_the_script

GIB = 2**30


@pytest.fixture(scope="module")
def context():
    shapes = synthetic.make_shapes(256 + 64, seed=0, difficulty="easy")
    images = torch.from_numpy(shapes.images).permute(0, 3, 1, 2).contiguous()
    labels = torch.from_numpy(shapes.labels)
    context = {
        "images_ex1": 45_000,
        "processes_ex1": 8,
        "batch_ex1": 64,
        "base_lr_ex1": 0.1,
        "images_ex2": 10,
        "processes_ex2": 4,
        "params_ex3": 13e9,
        "gpus_ex3": 8,
        "gpu_gib_ex3": 40,
        "script_settings": {
            "seed": 0,
            "epochs": 2,
            "dtype": "float64",
            "num_classes": 8,
        },
        "train_set": (images[:256], labels[:256]),
        "val_set": (images[256:], labels[256:]),
    }
    context["weights_1x32"] = train_like_the_script(context, batch=32)
    return context


def cases(context):
    # 12.1: 8 processes x 64 = 512 images a step; 45,000 / 8 = 5,625 images a process
    steps = math.ceil(5625 / 64)
    assert steps == 88

    # 12.2: the shuffled order of 10 images, cut every 4th from rank r, padded to 12
    order = torch.randperm(10, generator=torch.Generator().manual_seed(0)).tolist()
    padded = order + order[:2]
    train = [padded[r::4] for r in range(4)]
    evaluation = [list(range(10))[r::4] for r in range(4)]
    in_order = [(list(range(10)) + [0, 1])[r::4] for r in range(4)]
    blocks = [padded[3 * r : 3 * r + 3] for r in range(4)]

    # 12.3: 13e9 parameters x 16 bytes
    full = 13e9 * 16 / GIB

    solution_weights = train_like_the_script(context, batch=64)
    torch.manual_seed(1)
    fresh = InDtype(models.TwoConvNet(8), torch.float64).state_dict()
    return {
        "12.1": Case(
            (512, steps, 0.2),
            {
                "the per-process batch": (64, steps, 0.2),
                "one process's steps": (512, math.ceil(45_000 / 64), 0.2),
                "the last batch dropped": (512, 45_000 // 512, 0.2),
                "the learning rate unscaled": (512, steps, 0.1),
                "scaled by the processes": (512, steps, 0.8),
                "zeros": (0, 0, 0.0),
            },
            forbidden="steps_per_epoch = len(loader.shard(0, 8, pad=True))",
        ),
        "12.2": Case(
            (train, evaluation),
            {
                "training not padded": ([order[r::4] for r in range(4)], evaluation),
                "contiguous blocks": (blocks, evaluation),
                "not shuffled": (in_order, evaluation),
                "evaluation padded": (train, in_order),
                "swapped": (evaluation, train),
                "one list": (order, evaluation),
            },
            forbidden="train_shards = [list(sampler.shard(r, 4, pad=True)) for r in range(4)]",
        ),
        "12.3": Case(
            (full, full / 8, 5),
            {
                "weights only": (13e9 * 4 / GIB, 13e9 * 4 / GIB / 8, 2),
                "GB, not GiB": (13e9 * 16 / 1e9, 13e9 * 16 / 1e9 / 8, 6),
                "DDP sharded too": (full / 8, full / 8, 5),
                "rounded down": (full, full / 8, 4),
                "FSDP not divided": (full, full, 5),
                "zeros": (0.0, 0.0, 0),
            },
        ),
        "12.4": Case(
            (solution_weights, 64),
            {
                "the 2 x 16 run's weights": (context["weights_1x32"], 64),
                "the per-process batch": (solution_weights, 32),
                "fresh weights": (fresh, 64),
                "not a state dict": (list(solution_weights.values()), 64),
                "a batch of 128": (solution_weights, 128),
            },
        ),
    }


@pytest.fixture(scope="module")
def all_cases(context):
    return cases(context)


@pytest.mark.parametrize("exercise_id", ["12.1", "12.2", "12.3", "12.4"])
def test_exercise(context, all_cases, exercise_id):
    assert_case(exercise_id, all_cases[exercise_id], context)


def test_specific_hints(context, all_cases):
    """The common mistakes get their own hint."""

    def hint(exercise_id, name):
        return exercise_cases.hint(exercise_id, all_cases[exercise_id], name, context)

    assert "per process" in hint("12.1", "the per-process batch")
    assert "share" in hint("12.1", "one process's steps")
    assert "drop_last" in hint("12.1", "the last batch dropped")
    assert "should too" in hint("12.1", "the learning rate unscaled")
    assert "pads" in hint("12.2", "training not padded")
    assert "contiguous" in hint("12.2", "contiguous blocks")
    assert "shuffles" in hint("12.2", "not shuffled")
    assert "twice" in hint("12.2", "evaluation padded")
    assert "gradients" in hint("12.3", "weights only")
    assert "2**30" in hint("12.3", "GB, not GiB")
    assert "full copy" in hint("12.3", "DDP sharded too")
    assert "round up" in hint("12.3", "rounded down")
    assert "2 x 16" in hint("12.4", "the 2 x 16 run's weights")


def test_the_shards_of_two_processes_make_up_the_batch_of_one():
    """What chapter 12 builds on: with one seed, the first batch of 2 x 16 is the first
    batch of 1 x 32, split between the ranks."""
    from imgcls_helpers import data

    loader = data.TensorLoader(
        torch.zeros(64, 1, 1, 1, dtype=torch.uint8),
        torch.arange(64),
        batch_size=32,
        shuffle=True,
        device="cpu",
    )
    (_, whole), *_ = loader
    halves = []
    for rank in range(2):
        part = loader.shard(rank, 2, pad=True)
        part.batch_size = 16
        (_, first), *_ = part
        halves.append(first)
    assert sorted(torch.cat(halves).tolist()) == sorted(whole.tolist())
