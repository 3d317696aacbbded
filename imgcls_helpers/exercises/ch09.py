"""Chapter 9, CLIP and zero-shot classification: the judges of its exercises."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import torch
import torch.nn.functional as F

from .. import contrastive, zeroshot
from ..labs import Exercise, as_array, close, is_integer


def _tensor(value) -> torch.Tensor:
    return torch.as_tensor(as_array(value))


def _cosine(context, value):
    if isinstance(value, str | bool) or as_array(value).size != 1:
        return "give one number (a float or a one-number tensor)"
    u, v = _tensor(context["u"]), _tensor(context["v"])
    dot, lengths = float((u * v).sum()), float(u.norm() * v.norm())
    got = float(as_array(value).reshape(()))
    if close(got, dot, atol=1e-5):
        return "that is the dot product: divide it by the lengths of the two vectors"
    if close(got, dot / lengths**2, atol=1e-5):
        return "divide by the lengths (.norm()), not by their squares"
    if not close(got, dot / lengths, atol=1e-5):
        return "the cosine is the dot product divided by the length of u times the length of v"
    return None


def _zero_shot_probs(context, probs):
    image, prompts = _tensor(context["toy_image"]), _tensor(context["toy_prompts"])
    got = as_array(probs)
    if got.shape != (len(prompts),):
        return f"expected {len(prompts)} probabilities, one per class, shape ({len(prompts)},)"
    image_unit = image / image.norm()
    prompts_unit = prompts / prompts.norm(dim=1, keepdim=True)
    cosines = prompts_unit @ image_unit
    if close(got, (100 * cosines).softmax(0), atol=1e-4):
        return None
    if close(got, cosines.softmax(0)):
        return "these probabilities are almost flat: multiply the cosines by 100 first"
    if close(got, 100 * cosines):
        return "these are logits: a softmax turns them into probabilities"
    if close(got, (100 * prompts @ image).softmax(0)):
        return "normalise the image and every prompt (each row) to length 1 first"
    return "normalise both, take the cosines (a matrix product), times 100, then softmax"


def _prompts(context, prompts):
    classes, templates = context["flower_classes"], context["flower_templates"]
    if not isinstance(prompts, list | tuple) or not all(
        isinstance(row, list | tuple) for row in prompts
    ):
        return "give a list of lists of strings: one inner list per class"
    got = [list(row) for row in prompts]
    want = [[template.format(name) for template in templates] for name in classes]
    if got == want:
        return None
    if got == [list(row) for row in zip(*want, strict=True)]:
        return "one inner list per class (holding every template), not one per template"
    if len(got) != len(classes):
        return f"one inner list per class: {len(classes)} inner lists"
    return "each inner list: the class put into every template (str.format), in their order"


def _ensemble(context, vector):
    rows = _tensor(context["template_embeddings"])
    got = as_array(vector)
    if got.shape != (rows.shape[1],):
        return f"expected one vector of shape ({rows.shape[1]},)"
    unit_rows = rows / rows.norm(dim=1, keepdim=True)
    mean = unit_rows.mean(dim=0)
    plain = rows.mean(dim=0)
    if close(got, plain / plain.norm()):
        return "that is the plain mean: normalise each row before you average"
    if close(got, mean):
        return "the average of unit vectors is shorter than 1: normalise it again"
    by_column = rows / rows.norm(dim=0, keepdim=True)
    if close(got, by_column.mean(0) / by_column.mean(0).norm()):
        return "normalise each row (one template's embedding), not each column"
    if not close(got, mean / mean.norm(), atol=1e-5):
        return "normalise each row, average the rows, normalise the average"
    return None


# (batch size, embedding size, logit_scale) of the judge's random batches: the batch is
# never as long as the embeddings, so a transposed matrix product fails too.
_LOSS_BATCHES = ((6, 4, math.log(1 / 0.07)), (5, 8, 0.5), (8, 16, 2.0))


def _loss_batch(seed: int, batch: int, dim: int):
    """Embeddings of very different lengths, as raw encoder outputs have."""
    generator = torch.Generator().manual_seed(seed)
    lengths = 1 + 9 * torch.rand(2, batch, 1, generator=generator)
    image = torch.randn(batch, dim, generator=generator) * lengths[0]
    text = torch.randn(batch, dim, generator=generator) * lengths[1]
    return image, text


def _reference_loss(image, text, logit_scale):
    image_unit, text_unit = F.normalize(image, dim=-1), F.normalize(text, dim=-1)
    return contrastive.clip_loss(image_unit, text_unit, logit_scale.exp())


def _loss_mistake(got: float, image, text, logit_scale) -> str:
    """A hint for the common ways of getting CLIP's loss wrong."""
    image_unit, text_unit = F.normalize(image, dim=-1), F.normalize(text, dim=-1)
    logits = logit_scale.exp() * image_unit @ text_unit.T
    targets = torch.arange(len(logits))
    if close(got, F.cross_entropy(logits, targets)) or close(
        got, F.cross_entropy(logits.T, targets)
    ):
        return "that is one direction only: average image -> text (rows) and text -> image"
    if close(got, contrastive.clip_loss(image, text, logit_scale.exp())):
        return "normalise both embeddings to length 1 before the matrix product"
    if close(got, contrastive.clip_loss(image_unit, text_unit, logit_scale)):
        return "logit_scale is the logarithm of the scale: multiply by logit_scale.exp()"
    return "normalise, logits = exp(logit_scale) * image @ text.T, cross-entropy both ways"


def _info_nce(context, loss_fn):
    if not callable(loss_fn):
        return "info_nce must be a function (image_emb, text_emb, logit_scale) -> loss"
    for seed, (batch, dim, scale) in enumerate(_LOSS_BATCHES):
        image, text = _loss_batch(seed, batch, dim)
        image_in = image.clone().requires_grad_()
        logit_scale = torch.tensor(scale, requires_grad=True)
        got = loss_fn(image_in, text.clone(), logit_scale)
        if not isinstance(got, torch.Tensor) or got.numel() != 1:
            return "return the loss as a tensor holding one number (so it can be trained)"
        want_scale = torch.tensor(scale, requires_grad=True)
        want = _reference_loss(image, text, want_scale)
        if not close(got, want, atol=1e-5):
            return _loss_mistake(float(got.detach()), image, text, torch.tensor(scale))
        if not got.requires_grad:
            return "the loss carries no gradient: use torch operations only, no .item()"
        got.sum().backward()
        want.backward()
        if logit_scale.grad is None or not close(logit_scale.grad, want_scale.grad, atol=1e-5):
            return (
                "the gradient does not reach logit_scale: compute the scale with "
                "logit_scale.exp(), not math.exp, float() or .item()"
            )
        if image_in.grad is None:
            return "the gradient does not reach the image embeddings: do not detach them"
    return None


def _few_shot_curve(train_features, train_labels, test_features, test_labels, ks, draws=3):
    """Mean test accuracy of k-shot probes (seeded draws 0, 1, ...) for every k in ``ks``.

    Remembered for the last few inputs: a student who tries again, or a test that judges
    several wrong answers, pays for the 48 probes once."""
    arrays = [np.ascontiguousarray(as_array(a)) for a in (train_features, train_labels)]
    arrays += [np.ascontiguousarray(as_array(a)) for a in (test_features, test_labels)]
    key = hashlib.sha256(b"".join(a.tobytes() + str(a.shape).encode() for a in arrays))
    key.update(repr((tuple(ks), draws)).encode())
    if key.hexdigest() in _CURVES:
        return _CURVES[key.hexdigest()]
    train_labels = np.asarray(train_labels)
    curve = []
    for k in ks:
        accuracies = []
        for seed in range(draws):
            index = zeroshot.few_shot_indices(train_labels, k, seed=seed)
            accuracies.append(
                zeroshot.linear_probe(
                    train_features[index], train_labels[index], test_features, test_labels
                )
            )
        curve.append(float(np.mean(accuracies)))
    if len(_CURVES) >= 4:
        _CURVES.pop(next(iter(_CURVES)))
    _CURVES[key.hexdigest()] = curve
    return curve


_CURVES: dict[str, list[float]] = {}

SHOTS = tuple(range(1, 17))  # the values of k that exercise 9.6 measures


def _labels_worth(context, probe_curve, smallest_k):
    try:
        curve = as_array(probe_curve)
    except TypeError:
        return "probe_curve: a list of numbers, the mean accuracy for k = 1, 2, ..., 16"
    if curve.shape != (len(SHOTS),):
        return f"probe_curve: {len(SHOTS)} numbers, one per k from 1 to {SHOTS[-1]}"
    train_f, train_y = context["tiny_train_features"], np.asarray(context["train_shape"])
    test_f, test_y = context["seen_features"], np.asarray(context["seen_shape"])
    want = _few_shot_curve(train_f, train_y, test_f, test_y, SHOTS)
    if not close(curve, want, atol=1e-6):
        first_draw = _few_shot_curve(train_f, train_y, test_f, test_y, SHOTS[:2], draws=1)
        if close(curve[:2], first_draw, atol=1e-6):
            return "probe_curve: average the three draws (seed=0, 1, 2) for every k"
        return (
            "probe_curve: for each k, the mean test accuracy on the seen combinations of three "
            "probes (zeroshot.few_shot_indices with seed 0, 1, 2, then zeroshot.linear_probe)"
        )
    predicted = zeroshot.zero_shot_logits(test_f, context["shape_weights"]).argmax(1)
    zero_shot = float((np.asarray(predicted) == test_y).mean())
    beating = [k for k, accuracy in zip(SHOTS, want, strict=True) if accuracy > zero_shot]
    expected = beating[0] if beating else 0
    if not is_integer(smallest_k):
        return "smallest_k: a whole number (0 if no k up to 16 beats zero-shot)"
    if int(smallest_k) == expected:
        return None
    if expected and int(smallest_k) == expected - 1:
        return "smallest_k: k counts labelled images per class, from 1 (not a list index)"
    return (
        "smallest_k: the first k whose mean accuracy is higher than the zero-shot "
        "accuracy on the same test images (0 if there is none)"
    )


EXERCISES = [
    Exercise(
        "9.1",
        "cosine similarity by hand",
        1,
        ("cos_ex1",),
        _cosine,
        "the number equals the dot product of u and v over the product of their lengths",
        context=("u", "v"),
        forbidden=("cosine_similarity", "normalize"),
    ),
    Exercise(
        "9.2",
        "zero-shot probabilities of a toy model",
        2,
        ("probs_ex2",),
        _zero_shot_probs,
        "the three probabilities equal softmax(100 x cosine) of the toy image with each prompt",
        context=("toy_image", "toy_prompts"),
        forbidden=("normalize", "cosine_similarity", "zero_shot_logits", "text_classifier"),
    ),
    Exercise(
        "9.3",
        "prompts from templates",
        1,
        ("prompts_ex3",),
        _prompts,
        "the nested list equals every class in every template, one inner list per class",
        context=("flower_classes", "flower_templates"),
        forbidden=("build_prompts", "text_classifier"),
    ),
    Exercise(
        "9.4",
        "prompt ensembling by hand",
        1,
        ("class_vector_ex4",),
        _ensemble,
        "the vector equals the normalised mean of the normalised rows",
        context=("template_embeddings",),
        forbidden=("normalize", "text_classifier"),
    ),
    Exercise(
        "9.5",
        "CLIP's loss with a learnable temperature",
        2,
        ("info_nce",),
        _info_nce,
        "on three seeded random batches of unnormalised embeddings, the loss equals the "
        "chapter's helper on the normalised embeddings with scale exp(logit_scale), and the "
        "gradients with respect to logit_scale and to the image embeddings match it",
        forbidden=("clip_loss", "train_contrastive"),
    ),
    Exercise(
        "9.6",
        "how many labels are the prompts worth?",
        3,
        ("probe_curve", "smallest_k"),
        _labels_worth,
        "the judge re-runs the 16 x 3 seeded few-shot probes on the tiny CLIP's features; the "
        "curve must equal its own, and smallest_k the first k that beats its zero-shot accuracy",
        context=(
            "tiny_train_features",
            "train_shape",
            "seen_features",
            "seen_shape",
            "shape_weights",
        ),
    ),
]
