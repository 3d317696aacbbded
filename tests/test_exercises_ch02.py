"""Chapter 2's exercises: the solution passes, plausible wrong answers fail."""

from __future__ import annotations

import numpy as np
import pytest
from exercise_cases import Case, assert_case
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from imgcls_helpers import features, synthetic

# Rows are true classes, columns predictions. Built so that the lowest recall (c), the lowest
# precision (d), the fewest correct images (b) and the highest recall (a) all differ.
COUNTS = np.array(
    [
        [48, 0, 2, 0],
        [0, 19, 1, 0],
        [5, 0, 25, 20],
        [20, 0, 0, 30],
    ]
)


@pytest.fixture(scope="module")
def context():
    shapes = synthetic.make_shapes(200, seed=0)
    images = shapes.images  # (N, 32, 32, 3) uint8, as in the chapter
    hog = features.hog_features(images, n_jobs=1)
    return {
        "train_images": images,
        "X_fit": hog[:150],
        "X_val": hog[150:],
        "counts": COUNTS,
        "classes": ["a", "b", "c", "d"],
        "few_images": images[:160],
        "few_labels": shapes.labels[:160],
    }


def _cv_scores(images, labels, **options):
    pipeline = Pipeline(
        [("scale", StandardScaler()), ("svm", SVC(kernel="rbf", C=10, gamma="scale"))]
    )
    cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    x = features.hog_features(images, n_jobs=1, **options)
    return cross_val_score(pipeline, x, labels, cv=cv)


@pytest.fixture(scope="module")
def cases(context):
    images = context["train_images"]
    fine = features.hog_features(images[:10], n_jobs=1, pixels_per_cell=(4, 4))
    x_fit, x_val = context["X_fit"], context["X_val"]
    assert (x_fit.std(axis=0) > 0).all()  # no constant feature: the NumPy recipe is exact
    mu, sigma = x_fit.mean(axis=0), x_fit.std(axis=0)
    both = np.concatenate([x_fit, x_val])
    scores_9 = _cv_scores(context["few_images"], context["few_labels"])
    scores_4 = _cv_scores(context["few_images"], context["few_labels"], orientations=4)
    colour_4 = _cv_scores(context["few_images"], context["few_labels"], orientations=4, colour=True)
    acc_9, acc_4 = scores_9.mean(), scores_4.mean()
    bigger = bool(abs(acc_9 - acc_4) > scores_9.std())
    assert abs(acc_9 - acc_4) > 1e-3 and abs(colour_4.mean() - acc_4) > 1e-3
    return {
        "2.1": Case(
            (1764,),
            {
                "cells only, no overlap": (8 * 8 * 9,),
                "a block at every cell": (8 * 8 * 36,),
                "the 32 x 32 length": (324,),
                "text": ("1764",),
            },
            forbidden="length_64 = features.hog_length(64, 64)",
        ),
        "2.2": Case(
            (1764, fine),
            {
                "the 8 x 8 length predicted": (324, fine),
                "no overlap predicted": (8 * 8 * 9, fine),
                "default cells": (1764, features.hog_features(images[:10], n_jobs=1)),
                "colour HOG": (
                    1764,
                    features.hog_features(
                        images[:10], n_jobs=1, colour=True, pixels_per_cell=(4, 4)
                    ),
                ),
                "other images": (
                    1764,
                    features.hog_features(images[10:20], n_jobs=1, pixels_per_cell=(4, 4)),
                ),
                "random array of the right shape": (
                    1764,
                    np.random.default_rng(0).random(fine.shape),
                ),
            },
            forbidden="fine_length = features.hog_length(32, 32, pixels_per_cell=(4, 4))",
        ),
        "2.3": Case(
            ((x_val - mu) / sigma,),
            {
                "X_val's own statistics": ((x_val - x_val.mean(0)) / x_val.std(0),),
                "statistics of everything": ((x_val - both.mean(0)) / both.std(0),),
                "ddof=1": ((x_val - mu) / x_fit.std(axis=0, ddof=1),),
                "one mean for all features": ((x_val - x_fit.mean()) / x_fit.std(),),
                "unscaled": (x_val,),
                "zeros": (np.zeros_like(x_val),),
            },
            forbidden="val_scaled = fitted['scale'].transform(X_val)",
        ),
        "2.4": Case(
            ("c",),
            {
                "lowest precision": ("d",),
                "fewest correct": ("b",),
                "highest recall": ("a",),
                "an index": (2,),
                "not a class": ("z",),
            },
            forbidden=(
                "recall = recall_score(test_labels, predictions, average=None)\n"
                "hardest = classes[recall.argmin()]"
            ),
        ),
        "2.5": Case(
            (acc_9, acc_4, bigger),
            {
                "swapped": (acc_4, acc_9, bigger),
                "orientations not changed": (acc_9, acc_9, False),
                "colour HOG with 4 bins": (acc_9, colour_4.mean(), bigger),
                "the fold scores, not their mean": (scores_9, scores_4, bigger),
                "percentages": (100 * acc_9, 100 * acc_4, bigger),
                "wrong verdict on the spread": (acc_9, acc_4, not bigger),
                "a guess": (0.5, 0.5, True),
            },
        ),
    }


@pytest.mark.parametrize("exercise_id", ["2.1", "2.2", "2.3", "2.4", "2.5"])
def test_exercise(context, cases, exercise_id):
    assert_case(exercise_id, cases[exercise_id], context)
