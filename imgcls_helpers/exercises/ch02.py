"""Chapter 2, HOG + SVM: the judges of its exercises."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from ..features import hog_features, hog_length
from ..labs import Exercise, as_array, close, is_integer


def _whole_number(value) -> bool:
    return is_integer(value) and not isinstance(value, bool)


def _length_64(context, length_64):
    if not _whole_number(length_64):
        return "give one whole number (an int), not a string or a call"
    if int(length_64) == hog_length(64, 64):
        return None
    cells = 64 // 8
    if int(length_64) == cells * cells * 9:
        return "that counts each cell's 9 numbers once; blocks of 2 x 2 cells overlap"
    if int(length_64) == cells * cells * 36:
        return "a 2-cell block fits at (cells - 1) positions per side, not at every cell"
    return (
        "cells per side = 64 / 8; a 2 x 2-cell block fits at (cells - 1) positions per side; "
        "36 numbers per block"
    )


def _fine(context, fine_length, fine):
    images = np.asarray(context["train_images"])[:10]
    height, width = images.shape[1:3]
    if not _whole_number(fine_length):
        return "fine_length: give one whole number (an int)"
    if int(fine_length) != hog_length(height, width, pixels_per_cell=(4, 4)):
        if int(fine_length) == hog_length(height, width):
            return (
                "fine_length: that is the length with 8 x 8 cells; how many 4 x 4 cells per side?"
            )
        return (
            "fine_length: cells per side = 32 / 4; a 2 x 2-cell block fits at (cells - 1) "
            "positions per side; 36 numbers per block"
        )
    fine = as_array(fine)
    expected = hog_features(images, n_jobs=1, pixels_per_cell=(4, 4))
    if fine.shape != expected.shape:
        if fine.shape == (len(images), hog_length(height, width)):
            return "fine has the length of 8 x 8 cells: pass pixels_per_cell=(4, 4)"
        return "fine: one row per image (the first 10) and fine_length columns"
    if close(fine, hog_features(images, n_jobs=1, colour=True, pixels_per_cell=(4, 4)), 1e-5):
        return "that is colour HOG: leave colour at its default (grey)"
    if not close(fine, expected, atol=1e-5):
        return (
            "fine: features.hog_features of the first 10 training images (train_images[:10]), "
            "with pixels_per_cell=(4, 4) and every other option at its default"
        )
    return None


def _val_scaled(context, val_scaled):
    x_fit = np.asarray(context["X_fit"], dtype=np.float64)
    x_val = np.asarray(context["X_val"], dtype=np.float64)
    got = as_array(val_scaled)
    if got.shape != x_val.shape:
        return "val_scaled must have the shape of X_val: one row per validation image"
    if close(got, StandardScaler().fit(x_fit).transform(x_val), atol=1e-4):
        return None
    if close(got, (x_val - x_val.mean(axis=0)) / x_val.std(axis=0), atol=1e-4):
        return "use X_fit's mean and standard deviation (axis=0), not X_val's"
    everything = np.concatenate([x_fit, x_val])
    if close(got, (x_val - everything.mean(axis=0)) / everything.std(axis=0), atol=1e-4):
        return "only the training part X_fit: statistics that include X_val are the leak"
    if close(got, (x_val - x_fit.mean(axis=0)) / x_fit.std(axis=0, ddof=1), atol=1e-4):
        return "the pipeline's scaler uses np.std's default (ddof=0), not ddof=1"
    return "per feature (axis=0): subtract X_fit's mean, then divide by X_fit's standard deviation"


def _lowest(values: np.ndarray) -> set[int]:
    """The indices of the smallest values, ignoring NaN (a class with no images)."""
    return {int(c) for c in np.flatnonzero(np.isclose(values, np.nanmin(values)))}


def _hardest(context, hardest):
    counts = as_array(context["counts"])
    classes = [str(name) for name in context["classes"]]
    if not isinstance(hardest, str):
        if _whole_number(hardest):
            return "give the class's name (a string from classes), not its index"
        return "give a class name: a string from classes"
    if hardest.strip() not in classes:
        return "hardest must be one of the names in classes, spelt the same way"
    chosen = classes.index(hardest.strip())
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = counts.diagonal() / counts.sum(axis=1)
        precision = counts.diagonal() / counts.sum(axis=0)
    if chosen in _lowest(recall):
        return None
    if chosen in _lowest(precision):
        return (
            "that class has the lowest precision (a column: its predictions); recall looks "
            "at a row: the class's own test images"
        )
    if chosen in _lowest(counts.diagonal()):
        return "the fewest correct images is not the smallest share: divide by the row's total"
    if chosen in _lowest(-recall):
        return "that is the class with the highest recall; the exercise asks for the lowest"
    return "recall of class c = counts[c, c] / counts[c].sum(); then take the smallest"


def _cv_scores(images: np.ndarray, labels: np.ndarray, orientations: int) -> np.ndarray:
    """The five fold scores of section 2.7's pipeline and folds on grey HOG features with
    ``orientations`` bins: exercise 2.5's measurement, redone by its judge."""
    x = hog_features(images, n_jobs=1, orientations=orientations)
    pipeline = Pipeline(
        [("scale", StandardScaler()), ("svm", SVC(kernel="rbf", C=10, gamma="scale"))]
    )
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    return cross_val_score(pipeline, x, labels, cv=folds)


def _one_score(name, value):
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        if np.ndim(value) == 1 and np.size(value) == 5:
            return f"{name}: one number, the mean of the five fold scores"
        return f"{name}: give one number, a mean accuracy"
    if not 0 <= float(value) <= 1:
        return f"{name}: an accuracy between 0 and 1, not a percentage"
    return None


def _fewer_bins(context, acc_9_bins, acc_4_bins, bigger_than_spread):
    for name, value in (("acc_9_bins", acc_9_bins), ("acc_4_bins", acc_4_bins)):
        problem = _one_score(name, value)
        if problem:
            return problem
    if not isinstance(bigger_than_spread, bool | np.bool_):
        return "bigger_than_spread: True or False"
    images, labels = context["few_images"], context["few_labels"]
    scores_9, scores_4 = _cv_scores(images, labels, 9), _cv_scores(images, labels, 4)
    if not close(acc_9_bins, scores_9.mean()):
        if close(acc_9_bins, scores_4.mean()):
            return "acc_9_bins holds the 4-bin score: are the two answers swapped?"
        return (
            "acc_9_bins: the mean of cross_val_score(svm_pipeline, X, few_labels, cv=cv), "
            "with X the grey HOG features of few_images (default options)"
        )
    if not close(acc_4_bins, scores_4.mean()):
        if close(acc_4_bins, scores_9.mean()):
            return "acc_4_bins is the 9-bin score: pass orientations=4 to features.hog_features"
        return "acc_4_bins: the same measurement, with orientations=4 and nothing else changed"
    if bool(bigger_than_spread) != bool(abs(scores_9.mean() - scores_4.mean()) > scores_9.std()):
        return (
            "bigger_than_spread: compare the difference of the two means with the standard "
            "deviation of the five 9-bin fold scores"
        )
    return None


EXERCISES = [
    Exercise(
        "2.1",
        "the HOG length of a 64 x 64 image",
        1,
        ("length_64",),
        _length_64,
        "the number equals the descriptor length the judge derives for 64 x 64; the HOG "
        "helpers may not be called",
        forbidden=("hog_length", "hog_features", "hog"),
    ),
    Exercise(
        "2.2",
        "finer cells",
        2,
        ("fine_length", "fine"),
        _fine,
        "the predicted length, worked out by hand, equals the length with 4 x 4 cells; every "
        "value of the features equals the judge's own HOG of the first 10 training images",
        context=("train_images",),
        forbidden=("hog_length",),
    ),
    Exercise(
        "2.3",
        "what the scaler inside the pipeline learns",
        2,
        ("val_scaled",),
        _val_scaled,
        "every value equals a StandardScaler fitted on X_fit applied to X_val (within 1e-4); "
        "scikit-learn's scaler may not be called, nor its fitted statistics read",
        context=("X_fit", "X_val"),
        forbidden=(
            "StandardScaler",
            "transform",
            "fit_transform",
            "scale",
            "mean_",
            "scale_",
            "var_",
        ),
    ),
    Exercise(
        "2.4",
        "the class with the lowest recall",
        2,
        ("hardest",),
        _hardest,
        "the name is one of the classes whose recall, computed by the judge from counts, is "
        "the lowest; scikit-learn's metrics may not be called",
        context=("counts", "classes"),
        forbidden=(
            "recall_score",
            "confusion_matrix",
            "classification_report",
            "precision_recall_fscore_support",
        ),
    ),
    Exercise(
        "2.5",
        "fewer orientation bins",
        3,
        ("acc_9_bins", "acc_4_bins", "bigger_than_spread"),
        _fewer_bins,
        "the judge recomputes both cross-validated accuracies on the same 600 images and folds "
        "(within 1e-4) and whether their difference exceeds the 9-bin folds' spread",
        context=("few_images", "few_labels"),
    ),
]
