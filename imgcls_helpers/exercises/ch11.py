"""Chapter 11, your own images end to end: the judges of its exercises.

Each judge computes the expected answer with the helper the chapter uses (``class_weights``,
``label_issues``, ``corrupt``, ``grad_cam``), then recognises the common mistakes by computing
them too, so that a wrong answer gets a hint about what went wrong, never the answer.
"""

from __future__ import annotations

import numpy as np
import torch

from ..explain import grad_cam, label_issues
from ..labs import Exercise, as_array, close
from ..ownimages import class_weights
from ..robustness import SEVERITIES, corrupt

CONTRAST = (0.4, 0.3, 0.2, 0.1, 0.05)  # ImageNet-C's factors, severity 1..5 (for the hints)


def _numbers(value, length: int) -> np.ndarray | None:
    """``value`` as ``length`` numbers, or None (a dict, a string, the wrong length)."""
    if isinstance(value, dict | str):
        return None
    array = as_array(value)
    return array.reshape(-1) if array.size == length else None


# ------------------------------------------------------------ 11.1 class weights by hand


def _balanced(counts) -> np.ndarray:
    targets = np.repeat(np.arange(len(counts)), counts)
    return class_weights(targets, len(counts)).double().numpy()


def _class_weights(context, weights_ex1):
    classes, counts = context["classes_ex1"], context["counts_ex1"]
    n = np.array([counts[c] for c in classes], dtype=np.float64)
    got = _numbers(weights_ex1, len(classes))
    if got is None:
        return f"give {len(classes)} numbers (a list or tensor) in the order of classes_ex1"
    if close(got, _balanced(n.astype(int)), atol=1e-3):
        return None
    if close(got, _balanced(np.array(list(counts.values()))), atol=1e-3):
        return "one weight per class in the order of classes_ex1, not of counts_ex1"
    if close(got, n / n.sum()) or close(got, n):
        return "that gives the common classes the larger weights: a rare class needs a large one"
    if close(got, 1 / n, atol=1e-6):
        return "1 / count is the idea; now scale it by training images / number of classes"
    if close(got, n.sum() / n, atol=1e-3):
        return "divide by the number of classes too"
    if close(got.sum(), 1.0, atol=1e-3):
        return "do not normalise the weights to sum to 1: balanced weights average 1 per image"
    return "weight of a class = training images / (number of classes x images of that class)"


# ----------------------------------------------------------- 11.2 confident learning by hand


def _indices(value) -> list[int] | None:
    array = as_array(value)
    if array.ndim != 1 or not np.all(array == np.round(array)):
        return None
    return [int(i) for i in array]


def _confident_learning(context, thresholds_ex2, suspects_ex2):
    probs = as_array(context["probs_ex2"])
    labels = as_array(context["labels_ex2"]).astype(int)
    n_classes = probs.shape[1]
    got_t = _numbers(thresholds_ex2, n_classes)
    if got_t is None:
        return f"thresholds_ex2: one number per class, {n_classes} in all"
    want_t = np.array([probs[labels == j, j].mean() for j in range(n_classes)])
    if not close(got_t, want_t, atol=1e-4):
        if close(got_t, probs.mean(axis=0), atol=1e-4):
            return "thresholds_ex2: average probs[:, j] only over the examples labelled j"
        return "thresholds_ex2: t_j is the mean probability of class j over the examples labelled j"
    got_s = _indices(suspects_ex2)
    if got_s is None:
        return "suspects_ex2: a list of example indices (whole numbers)"
    want_s = [int(i) for i in label_issues(probs, labels)]
    if got_s == want_s:
        return None
    if sorted(got_s) == sorted(want_s):
        return "suspects_ex2: rank them by self-confidence probs[n, labels[n]], lowest first"
    if set(got_s) == set(np.flatnonzero(probs.argmax(axis=1) != labels)):
        return (
            "suspects_ex2: an example whose probabilities are all below their class's threshold is "
            "confident in no class, so it is not a suspect, even if its argmax is not its label"
        )
    return (
        "suspects_ex2: among the classes j with probs[n, j] >= t_j, take the most probable; "
        "the example is a suspect when that class is not its label"
    )


# ------------------------------------------------------ 11.3 ImageNet-C contrast by hand


def _contrast_by_hand(images: torch.Tensor, c: float, dims: tuple[int, ...]) -> torch.Tensor:
    x = images.double() / 255
    mean = x.mean(dim=dims, keepdim=True)
    return (((x - mean) * c + mean).clamp(0, 1) * 255).round().to(torch.uint8)


def _contrast(context, contrasted):
    images, severity = context["images_ex3"], context["severity_ex3"]
    if not isinstance(contrasted, torch.Tensor | np.ndarray):
        return "contrasted: a uint8 tensor shaped like images_ex3"
    if isinstance(contrasted, np.ndarray):
        contrasted = torch.from_numpy(np.ascontiguousarray(contrasted))
    got = contrasted.detach().cpu()
    if got.shape != images.shape:
        return f"contrasted: the same shape as images_ex3, {tuple(images.shape)}"
    if got.dtype != torch.uint8:
        return "contrasted: uint8 pixels 0..255 like images_ex3 (x 255, round, .to(torch.uint8))"

    def near(want: torch.Tensor) -> bool:
        return (got.int() - want.int()).abs().max().item() <= 1

    if near(corrupt(images, "contrast", severity)):
        return None
    c = CONTRAST[severity - 1]
    if near(_contrast_by_hand(images, c, (1, 2, 3))):
        return "take the mean of each channel of each image separately, not of all its pixels"
    if any(near(_contrast_by_hand(images, c, dims)) for dims in [(0, 2, 3), (0, 1, 2, 3)]):
        return "each image has its own means: do not average over the whole batch"
    if any(near(corrupt(images, "contrast", s)) for s in SEVERITIES if s != severity):
        return "severity s uses the s-th factor of ImageNet-C's list (severity 1 is the first)"
    return "per channel of each image: (x - its mean) x c + its mean, on pixels in [0, 1]"


# --------------------------------------------------------------- 11.4 latency from timings


def _one_number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number | torch.Tensor):
        return None
    array = as_array(value)
    return float(array.reshape(())) if array.size == 1 else None


def _near(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-3 * abs(b)


def _latency(context, ms_per_image_1, ms_per_image_32, speedup):
    timings, warmup = context["seconds_ex4"], context["warmup_ex4"]
    answers = {"ms_per_image_1": ms_per_image_1, "ms_per_image_32": ms_per_image_32}
    want = {}
    for (name, value), (key, seconds) in zip(answers.items(), timings.items(), strict=True):
        batch, seconds = int(key.split()[-1]), np.asarray(seconds, dtype=np.float64)
        want[name] = np.median(seconds[warmup:]) * 1000 / batch
        got = _one_number(value)
        if got is None:
            return f"{name}: one number, in milliseconds"
        if _near(got, want[name]):
            continue
        if _near(got, np.median(seconds) * 1000 / batch):
            return f"{name}: leave out the first warmup_ex4 runs (the warm-up) before the median"
        if any(_near(got, np.mean(s) * 1000 / batch) for s in (seconds[warmup:], seconds)):
            return f"{name}: the median, not the mean: one slow run must not move it"
        if batch > 1 and _near(got, want[name] * batch):
            return f"{name}: per image: one batch holds {batch} images"
        if _near(got, want[name] / 1000):
            return f"{name}: in milliseconds (seconds x 1000)"
        return f"{name}: the median of the timed runs, after the warm-up, per image, in ms"
    got = _one_number(speedup)
    if got is None:
        return "speedup: one number"
    ratio = want["ms_per_image_1"] / want["ms_per_image_32"]
    if _near(got, ratio):
        return None
    if _near(got, 1 / ratio):
        return "speedup: ms_per_image_1 / ms_per_image_32 (above 1 when batching helps)"
    return "speedup: how many times less time an image takes in a batch of 32 than alone"


# ------------------------------------------------------------- 11.5 Grad-CAM by hand


def _cam_by_hand(activations: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    cam = (weights[:, None, None] * activations).sum(dim=0).clamp(min=0)
    return cam / cam.max() if cam.max() > 0 else cam


def _grad_cam(context, cam):
    model, image, target = context["tiny_ex5"], context["image_ex5"], context["target_ex5"]
    want = grad_cam(model, model[1], image, [target])[0]
    got = as_array(cam).squeeze()
    if got.shape != tuple(want.shape):
        return f"cam: one map the size of the feature maps, {tuple(want.shape)}"
    if close(got, want, atol=1e-4):
        return None
    if got.min() < -1e-6:
        return "Grad-CAM keeps only the evidence for the class: apply a ReLU to the sum"
    with torch.no_grad():
        conv, relu = model[0](image)[0].double(), model[:2](image)[0].double()
    weights = model[-1].weight.detach().double()
    if got.max() > 0 and close(got / got.max(), want, atol=1e-4):
        return "divide the map by its maximum, so that its strongest point is 1"
    if any(close(got, _cam_by_hand(relu, w), atol=1e-4) for w in weights):
        return "alpha_k comes from the gradient of the score of class target_ex5, not another"
    if close(got, _cam_by_hand(conv, weights[target]), atol=1e-4):
        return "A_k is the ReLU's output (model[1]), not the convolution's"
    return "alpha_k = mean over positions of d score / d A_k; cam = ReLU(sum_k alpha_k A_k) / max"


EXERCISES = [
    Exercise(
        "11.1",
        "class weights by hand",
        2,
        ("weights_ex1",),
        _class_weights,
        "the weights equal ownimages.class_weights (scikit-learn's 'balanced') for the counts, "
        "in the order of classes_ex1, within 1e-3; the helpers may not be called",
        context=("classes_ex1", "counts_ex1"),
        forbidden=("class_weights", "compute_class_weight", "compute_sample_weight"),
    ),
    Exercise(
        "11.2",
        "confident learning by hand",
        3,
        ("thresholds_ex2", "suspects_ex2"),
        _confident_learning,
        "the per-class thresholds equal the mean probability of each class over the examples "
        "labelled with it (within 1e-4), and the suspects equal explain.label_issues, in its "
        "order; label_issues may not be called",
        context=("probs_ex2", "labels_ex2"),
        forbidden=("label_issues", "find_label_issues"),
    ),
    Exercise(
        "11.3",
        "ImageNet-C contrast by hand",
        2,
        ("contrasted",),
        _contrast,
        "the uint8 images equal robustness.corrupt(images_ex3, 'contrast', severity_ex3) "
        "within 1 grey level; corrupt may not be called",
        context=("images_ex3", "severity_ex3"),
        forbidden=("corrupt", "_contrast", "adjust_contrast"),
    ),
    Exercise(
        "11.4",
        "latency per image from timings",
        2,
        ("ms_per_image_1", "ms_per_image_32", "speedup"),
        _latency,
        "each time is the median of the runs after the warm-up, in ms per image, and the "
        "speedup their ratio, within 0.1%",
        context=("seconds_ex4", "warmup_ex4"),
    ),
    Exercise(
        "11.5",
        "Grad-CAM by hand on a tiny model",
        3,
        ("cam",),
        _grad_cam,
        "the map equals explain.grad_cam at the ReLU's output for class target_ex5 within "
        "1e-4; grad_cam and captum may not be used",
        context=("tiny_ex5", "image_ex5", "target_ex5"),
        forbidden=("grad_cam", "captum", "LayerGradCam", "GradCAM"),
    ),
]
