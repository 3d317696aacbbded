"""Chapter 1, the input pipeline: the judges of its exercises."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2

from ..data import IMAGENET_MEAN, IMAGENET_STD, eval_transforms
from ..labs import Exercise, close, digest, same_under_seeds


def _normalised_red(context, value):
    if not isinstance(value, int | float | np.floating) and not (
        isinstance(value, torch.Tensor) and value.numel() == 1
    ):
        return "give one number (a float)"
    if close(float(value), (200 - IMAGENET_MEAN[0]) / IMAGENET_STD[0], atol=1e-3):
        return "the pixel is 200 out of 255: scale it to [0, 1] before you normalise"
    if not close(float(value), (200 / 255 - IMAGENET_MEAN[0]) / IMAGENET_STD[0]):
        return "divide by 255 first, then subtract the red mean and divide by the red std"
    return None


def _small(context, small):
    if not isinstance(small, torch.Tensor) or tuple(small.shape) != (3, 160, 160):
        return "expected a tensor of shape (3, 160, 160)"
    if small.min() >= 0:
        return "no negative values: did you forget v2.Normalize?"
    if not close(small, eval_transforms(160)(context["pil_image"]), atol=1e-4):
        return "resize the short side to 160 / 0.875 (rounded) first, then crop the centre"
    return None


def _bgr_to_rgb(context, rgb):
    bgr = context["opencv_bgr"]
    if not isinstance(rgb, np.ndarray) or rgb.shape != bgr.shape:
        return f"expected a NumPy array of shape {bgr.shape}"
    if np.array_equal(rgb, bgr):
        return "that is still the B, G, R order"
    if not np.array_equal(rgb, bgr[..., ::-1]):
        return "a slice with a step of -1 reverses an axis; which axis holds the channels?"
    return None


_CULPRIT = "4e07408562bedb8b"  # digest of the index of the random step


def _fixed_eval(context, culprit, fixed_eval):
    if digest(culprit) != _CULPRIT:
        return "culprit: run growing prefixes of buggy_eval.transforms twice each"
    if not isinstance(fixed_eval, v2.Compose):
        return "fixed_eval must be a v2.Compose built from buggy_eval's steps"
    steps = [type(step) for step in fixed_eval.transforms]
    if v2.ColorJitter in steps or len(steps) != 5:
        return "keep every step of buggy_eval except the random one"
    image = context["pil_image"]
    flipped = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    reference = eval_transforms(224)
    if not same_under_seeds(fixed_eval, reference, [image, flipped]):
        return "on the same image, it must give the same tensor as eval_tf on every call"
    return None


def _bgr_cost(context, p_rgb, p_bgr):
    model, preprocess = context["model"], context["preprocess"]
    with torch.no_grad():
        rgb = model(preprocess(context["pil_image"]).unsqueeze(0)).softmax(dim=1)[0]
        bgr_image = Image.fromarray(np.ascontiguousarray(context["opencv_bgr"]))
        bgr = model(preprocess(bgr_image).unsqueeze(0)).softmax(dim=1)[0]
    top = int(rgb.argmax())
    if not close(p_rgb, rgb[top], atol=1e-5):
        return "p_rgb: the probability of the top class for the correct (RGB) input"
    if close(p_bgr, bgr[top], atol=1e-5):
        return None
    if close(p_bgr, bgr.max(), atol=1e-5):
        return "p_bgr: the probability of the *same* class as p_rgb, not the BGR input's top"
    return "p_bgr: give the B, G, R array to the same preprocessing (Image.fromarray)"


EXERCISES = [
    Exercise(
        "1.1",
        "red value 200, normalised",
        1,
        ("normalised_red",),
        _normalised_red,
        "the number equals (200/255 - mean) / std within 1e-4; Normalize may not be called",
        forbidden=("Normalize", "normalize", "eval_transforms"),
    ),
    Exercise(
        "1.2",
        "a 160 x 160 input",
        1,
        ("small",),
        _small,
        "every value equals the 160-pixel evaluation transform of the cat (not only the shape)",
        context=("pil_image",),
        forbidden=("eval_transforms",),
    ),
    Exercise(
        "1.3",
        "BGR to RGB by indexing",
        1,
        ("rgb_by_indexing",),
        _bgr_to_rgb,
        "the array equals OpenCV's image with its channels reversed; cv2 may not be called",
        context=("opencv_bgr",),
        forbidden=("cvtColor", "flip"),
    ),
    Exercise(
        "1.4",
        "find the hidden randomness",
        2,
        ("culprit", "fixed_eval"),
        _fixed_eval,
        "the index of the random step (checked against a fingerprint), and a Compose of the "
        "other steps that gives eval_tf's tensors on two images under three seeds",
        context=("pil_image",),
    ),
    Exercise(
        "1.5",
        "measure what a colour-order bug costs",
        2,
        ("p_rgb", "p_bgr"),
        _bgr_cost,
        "both probabilities equal the judge's own run of the chapter's model on the RGB and "
        "the BGR input, for the RGB input's top class",
        context=("model", "preprocess", "pil_image", "opencv_bgr"),
    ),
]
