"""Chapter 5's exercises: the solution passes, plausible wrong answers fail."""

from __future__ import annotations

import pytest
import torch
from exercise_cases import Case, assert_case

from imgcls_helpers import config, data, resnet, synthetic
from imgcls_helpers.exercises.ch05 import feature_extraction_val


def _shapes(n: int, shapes: tuple[str, ...], seed: int, difficulty: str = "easy"):
    made = synthetic.make_shapes(n, shapes=shapes, difficulty=difficulty, seed=seed)
    return data.dataset_to_tensors(synthetic.ShapesDataset(made))


@pytest.fixture(scope="module")
def context():
    """Section 5.5's chapter variables, small: a source network that was never trained (the
    judge does not care), two four-class targets of 40 images, a few steps."""
    config.seed_everything(0)
    state = resnet.small_resnet(4).state_dict()
    similar, different = ("ring", "triangle", "crescent", "arrow"), synthetic.SHAPES[:4]
    return {
        "pretrained_state": state,
        "domains": {
            "similar": (_shapes(40, similar, 3), _shapes(40, similar, 5), None, 4),
            "different": (
                _shapes(40, different, 3, "hard"),
                _shapes(40, different, 5, "hard"),
                None,
                4,
            ),
        },
        "chosen_lr": {
            ("similar", "feature extraction"): 3e-2,
            ("different", "feature extraction"): 1e-2,
        },
        "k_main": 5,
        "steps": 6,
        "batch_size": 8,
    }


def cases(context):
    free = {d: feature_extraction_val(context, d, hook=False)[0] for d in context["domains"]}
    frozen = {d: feature_extraction_val(context, d, hook=True)[0] for d in context["domains"]}
    assert all(abs(free[d] - frozen[d]) > 0.01 for d in free), "the test cannot tell them apart"
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in resnet.small_resnet(4).modules())
    one_wrong = dict(free, similar=frozen["similar"])
    return {
        "5.1": Case(
            (1280 * 37 + 37,),
            {
                "no bias": (1280 * 37,),
                "ImageNet's head": (1280 * 1000 + 1000,),
                "the chapter's 102 classes": (1280 * 102 + 102,),
                "a round number": (50_000,),
                "text": ("47397",),
            },
            forbidden="n_trainable = models.count_parameters(pets, trainable_only=True)",
        ),
        "5.2": Case(
            (["features.7", "features.8", "classifier"],),
            {
                "reversed": (["classifier", "features.8", "features.7"],),
                "head left out": (["features.6", "features.7", "features.8"],),
                "two groups": (["features.8", "classifier"],),
                "module names": (["features", "classifier"],),
                "a string": ("features.7, features.8, classifier",),
            },
            forbidden="groups_ex2 = transfer.trainable_groups(pets)",
        ),
        "5.3": Case(
            ([1e-5, 1e-4, 1e-3],),
            {
                "reversed": ([1e-3, 1e-4, 1e-5],),
                "every group": ([1e-7, 1e-6, 1e-5, 1e-4, 1e-3],),
                "one rate for all": ([1e-3, 1e-3, 1e-3],),
                "factor counted from the stem": ([1e-6, 1e-5, 1e-3],),
                "strings": (["1e-5", "1e-4", "1e-3"],),
            },
            forbidden="lrs_ex3 = [g['lr'] for g in transfer.discriminative_param_groups(net)]",
        ),
        "5.4": Case(
            (["feature extraction", "fine-tuning"],),
            {
                "swapped": (["fine-tuning", "feature extraction"],),
                "always fine-tune": (["fine-tuning", "fine-tuning"],),
                "always feature extraction": (["feature extraction", "feature extraction"],),
                "another word": (["from scratch", "fine-tuning"],),
                "one answer": (["feature extraction"],),
            },
        ),
        "5.5": Case(
            (n_bn, free),
            {
                "transfer.freeze, as the chapter does": (0, frozen),
                "the statistics moved, the frozen-BN accuracies": (n_bn, frozen),
                "one target from the frozen run": (n_bn, one_wrong),
                "percentages": (n_bn, {d: 100 * v for d, v in free.items()}),
                "chance": (n_bn, {d: 0.25 for d in free}),
                "a list": (n_bn, list(free.values())),
                "one layer counted": (1, free),
            },
        ),
    }


@pytest.fixture(scope="module")
def all_cases(context):
    return cases(context)  # built once: exercise 5.5's cases train networks


@pytest.mark.parametrize("exercise_id", ["5.1", "5.2", "5.3", "5.4", "5.5"])
def test_exercise(context, all_cases, exercise_id):
    assert_case(exercise_id, all_cases[exercise_id], context)
