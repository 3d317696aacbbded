"""Chapter 6, augmentation, MixUp and CutMix: the judges of its exercises."""

from __future__ import annotations

import hashlib

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from .. import config, data, metrics, models, train
from ..labs import Exercise, as_array, close, same_under_seeds

# ----------------------------------------------------------------- 6.1 a MixUp label by hand

_STAR, _RING, _LAMBDA, _CLASSES = 4, 1, 0.7, 8


def _mixup_soft_target(lam: float) -> torch.Tensor:
    """The soft target of the exercise, ``lam`` on the star and ``1 - lam`` on the ring."""
    one_hot = torch.eye(_CLASSES)
    return lam * one_hot[_STAR] + (1 - lam) * one_hot[_RING]


def _soft_target(context, soft_target):
    try:
        values = as_array(soft_target)
    except TypeError:
        return "give 8 numbers, e.g. torch.tensor([...])"
    if values.shape != (_CLASSES,):
        return f"give a flat tensor of {_CLASSES} numbers, one weight per class"
    if close(values, _mixup_soft_target(1 - _LAMBDA)):
        return "λ is the weight of the star: it goes to the star's index, 1 − λ to the ring's"
    if not np.isclose(values.sum(), 1.0, atol=1e-4):
        return "a soft target's weights sum to 1 (λ plus 1 − λ)"
    if not close(values, _mixup_soft_target(_LAMBDA)):
        return "λ at the star's index, 1 − λ at the ring's index, zero everywhere else"
    return None


# ------------------------------------------------------- 6.2 and 6.3 training and evaluation


def _photo_reference() -> v2.Compose:
    return v2.Compose(
        [
            v2.RandomResizedCrop(96, scale=(0.25, 1.0)),
            v2.RandomHorizontalFlip(),
            v2.ColorJitter(brightness=0.3, contrast=0.3),
            v2.ToDtype(torch.float32, scale=True),
        ]
    )


def _eval_reference(size=110) -> v2.Compose:
    return v2.Compose([v2.Resize(size), v2.CenterCrop(96), v2.ToDtype(torch.float32, scale=True)])


def _test_images(cat: torch.Tensor) -> list[torch.Tensor]:
    """The chapter's cat, and a wider-than-high crop of it: a square image alone cannot tell
    a short-side resize from a squashing one, nor show every crop parameter."""
    if not isinstance(cat, torch.Tensor) or cat.dtype != torch.uint8 or cat.ndim != 3:
        raise TypeError("the chapter's `cat` must be a uint8 (3, H, W) tensor")
    return [cat, cat[:, 16:136, :].clone()]


def _output_hint(pipeline, image) -> str | None:
    """A hint about the first output's type, shape and range, or None when they are right."""
    if not callable(pipeline):
        return "give a v2.Compose([...]): something that can be called on an image"
    out = pipeline(image)
    if not isinstance(out, torch.Tensor):
        return f"the pipeline returned a {type(out).__name__}, not a tensor"
    if tuple(out.shape) != (3, 96, 96):
        return f"the output has shape {tuple(out.shape)}, not (3, 96, 96)"
    if out.dtype != torch.float32 or out.min() < 0 or out.max() > 1:
        return "end with v2.ToDtype(torch.float32, scale=True): scale=True divides by 255"
    return None


def _steps_hint(pipeline, reference: v2.Compose) -> str | None:
    """For a Compose: whether its steps are the reference's kinds of step, in its order."""
    if not isinstance(pipeline, v2.Compose):
        return None
    got = [type(step).__name__ for step in pipeline.transforms if not isinstance(step, v2.ToImage)]
    want = [type(step).__name__ for step in reference.transforms]
    if got != want:
        return f"the steps should be, in this order: {', '.join(want)}"
    return None


def _photo_pipeline(context, photo_pipeline):
    images = _test_images(context["cat"])
    torch.manual_seed(0)
    hint = _output_hint(photo_pipeline, images[0]) or _steps_hint(
        photo_pipeline, _photo_reference()
    )
    if hint:
        return hint
    if not same_under_seeds(photo_pipeline, _photo_reference(), images):
        if isinstance(photo_pipeline, v2.Compose):
            crop, _, jitter, _ = [
                s for s in photo_pipeline.transforms if not isinstance(s, v2.ToImage)
            ]
            if tuple(crop.scale) != (0.25, 1.0):
                return "keep between 25% and 100% of the area: scale=(0.25, 1.0)"
            strengths = [jitter.brightness, jitter.contrast]
            if (
                any(s is None or not np.allclose(s, (0.7, 1.3)) for s in strengths)
                or jitter.saturation is not None
                or jitter.hue is not None
            ):
                return "the jitter changes brightness and contrast by up to 0.3, nothing else"
        return (
            "under the same seed it must give the tensors of the pipeline the exercise "
            "describes: check each step's settings"
        )
    return None


def _eval_pipeline(context, eval_pipeline):
    images = _test_images(context["cat"])
    hint = _output_hint(eval_pipeline, images[0])
    if hint:
        return hint
    outputs = []
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        outputs.append(eval_pipeline(images[1]))
    if not all(torch.equal(outputs[0], other) for other in outputs[1:]):
        return "the output changes with the seed: leave out every random step"
    if not same_under_seeds(eval_pipeline, _eval_reference(), images):
        if same_under_seeds(eval_pipeline, _eval_reference((110, 110)), images):
            return "Resize((110, 110)) squashes a non-square image: Resize(110) keeps its shape"
        return "resize the short side to 110 pixels, crop the centre 96 × 96, then convert"
    return None


# ---------------------------------------------------------------- 6.4 the two-term MixUp loss


def _two_term_loss(context, two_term_loss):
    if not isinstance(two_term_loss, int | float | np.floating | torch.Tensor) or (
        isinstance(two_term_loss, torch.Tensor) and two_term_loss.numel() != 1
    ):
        return "give one number: the mean loss over the 5 images"
    z, y_i, y_j, lam = (context[name] for name in ("z", "y_i", "y_j", "lam_ex"))
    classes = z.shape[1]
    soft = lam * F.one_hot(y_i, classes) + (1 - lam) * F.one_hot(y_j, classes)
    with torch.no_grad():
        expected = F.cross_entropy(z, soft.float())
        swapped = (1 - lam) * F.cross_entropy(z, y_i) + lam * F.cross_entropy(z, y_j)
    value = float(as_array(two_term_loss).reshape(()))
    if close(value, expected, atol=1e-5):
        return None
    if close(value, swapped, atol=1e-5):
        return "λ (lam_ex) weighs the loss for y_i, the first images; 1 − λ weighs y_j"
    return "two calls of F.cross_entropy(z, labels), weighted by lam_ex and 1 - lam_ex"


# --------------------------------------------------- 6.5 MixUp and the network's confidence

SHORT_EPOCHS = 20
"""The fixed budget of the exercise's short training run (the notebook's ``short_run``)."""

_overconfidence_cache: dict[tuple, float] = {}


def _short_run(context, alpha: float | None) -> float:
    """The notebook's ``short_run`` and the student's measurement, written out again."""
    (images, labels), (val_images, val_labels) = context["short_train"], context["short_val"]
    stats, num_classes = context["stats"], context["num_classes"]
    mix = None if alpha is None else v2.MixUp(alpha=alpha, num_classes=num_classes)
    config.seed_everything(0)
    model = models.TwoConvNet(num_classes)
    loader = data.TensorLoader(
        images,
        labels,
        batch_size=32,
        shuffle=True,
        drop_last=True,
        device="cpu",
        split="train",
        **stats,
    )
    train.fit(
        model,
        loader,
        epochs=SHORT_EPOCHS,
        optimizer="adamw",
        lr=3e-3,
        weight_decay=0.05,
        batch_transform=mix,
        device="cpu",
        progress=False,
        verbose=False,
    )
    val_loader = data.TensorLoader(
        val_images, val_labels, batch_size=500, device="cpu", split="val", **stats
    )
    pred = metrics.predict(model, val_loader)
    confidence = pred.probs.max(dim=1).values.mean().item()
    return confidence - metrics.accuracy(pred.preds, pred.targets)


def short_run_overconfidence(context: dict, alpha: float | None) -> float:
    """Train as the notebook's ``short_run`` does, with ``v2.MixUp(alpha)`` (or without
    MixUp for ``None``), and return the validation overconfidence: the mean top probability
    minus the accuracy. Seeded and on the CPU, so it repeats the student's measurement."""
    (images, labels), (val_images, val_labels) = context["short_train"], context["short_val"]
    stats, num_classes = context["stats"], context["num_classes"]
    fingerprint = hashlib.sha256()
    for tensor in (images, labels, val_images, val_labels):
        fingerprint.update(tensor.cpu().numpy().tobytes())
    key = (fingerprint.hexdigest(), repr(stats), num_classes, alpha, train.fast_dev_run())
    if key not in _overconfidence_cache:
        # one thread, as in the notebook: the thread count changes the last bits of the
        # arithmetic, and twenty epochs turn that into a different result
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            _overconfidence_cache[key] = _short_run(context, alpha)
        finally:
            torch.set_num_threads(threads)
    return _overconfidence_cache[key]


# On one machine, with one thread, the run repeats to the last bit. The margin is for a
# student's kernel and a grader on different CPUs, whose arithmetic can differ in the last
# bits of a float, which twenty epochs can grow into a small difference in the result.
_RUN_TOLERANCE = 0.03


def _mixup_confidence(context, overconfidence_plain, overconfidence_mixup):
    for name, value in [
        ("overconfidence_plain", overconfidence_plain),
        ("overconfidence_mixup", overconfidence_mixup),
    ]:
        if not isinstance(value, int | float | np.floating) and not (
            isinstance(value, torch.Tensor) and value.numel() == 1
        ):
            return f"{name}: give one number (mean confidence minus accuracy)"
    plain = short_run_overconfidence(context, None)
    mixed = short_run_overconfidence(context, 1.0)
    got_plain, got_mixed = float(overconfidence_plain), float(overconfidence_mixup)
    if close(got_plain, plain, _RUN_TOLERANCE) and close(got_mixed, mixed, _RUN_TOLERANCE):
        return None  # first: when the two runs end close together, swapping is no mistake
    if close(got_plain, mixed, _RUN_TOLERANCE) and close(got_mixed, plain, _RUN_TOLERANCE):
        return "the two numbers are swapped: the first is the run without MixUp"
    if not close(got_plain, plain, _RUN_TOLERANCE):
        return (
            "overconfidence_plain: run short_run() without a batch_transform and take the "
            "mean of each image's largest probability minus the accuracy"
        )
    if not close(got_mixed, mixed, _RUN_TOLERANCE):
        return (
            "overconfidence_mixup: pass v2.MixUp(alpha=1.0, num_classes=num_classes) to "
            "short_run and measure the same way"
        )
    return None


EXERCISES = [
    Exercise(
        "6.1",
        "a MixUp label by hand",
        1,
        ("soft_target",),
        _soft_target,
        "the 8 numbers equal 0.7 times the star's one-hot vector plus 0.3 times the ring's; "
        "one_hot and the MixUp transforms may not be called",
        forbidden=("one_hot", "MixUp", "CutMix", "mixup", "cutmix", "mix_or_cut"),
    ),
    Exercise(
        "6.2",
        "a training pipeline for photos",
        2,
        ("photo_pipeline",),
        _photo_pipeline,
        "under three seeds it gives the same tensors as the pipeline described, on the cat "
        "and on a wider crop of it (so the random draws, their order and the settings match)",
        context=("cat",),
    ),
    Exercise(
        "6.3",
        "an evaluation pipeline must not be random",
        1,
        ("eval_pipeline",),
        _eval_pipeline,
        "the output is the same under three seeds and equals the resize, centre crop and "
        "conversion described, on the cat and on a wider crop of it",
        context=("cat",),
    ),
    Exercise(
        "6.4",
        "the two-term MixUp loss",
        1,
        ("two_term_loss",),
        _two_term_loss,
        "the number equals F.cross_entropy on the soft targets, computed by the check; "
        "one_hot and log-softmax may not be called",
        context=("z", "y_i", "y_j", "lam_ex"),
        forbidden=("one_hot", "eye", "log_softmax", "nll_loss"),
    ),
    Exercise(
        "6.5",
        "MixUp and the network's confidence",
        3,
        ("overconfidence_plain", "overconfidence_mixup"),
        _mixup_confidence,
        "the check trains the short run itself, without MixUp and with MixUp (alpha 1), "
        f"seeded, and compares both validation overconfidences within {_RUN_TOLERANCE}",
        context=("short_train", "short_val", "stats", "num_classes"),
    ),
]
