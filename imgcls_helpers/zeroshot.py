"""Zero-shot classification with CLIP-style models: prompts, embeddings, logits, probes.

A CLIP model has two encoders that map images and sentences into one embedding space. To
classify without training, write a sentence per class ("a photo of a cat"), embed the
sentences and the image, and pick the class whose sentence is closest (cosine similarity).
Everything here is duck-typed on ``model.encode_image`` / ``model.encode_text`` and a
``tokenizer(list[str]) -> tensor``, so it works for open_clip models and for the chapter's
tiny model (:mod:`imgcls_helpers.contrastive`) alike. :func:`load_clip` gets open_clip
weights when it can and says loudly when it cannot, like ``transfer.pretrained_or_random``.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import announce, is_offline
from .models import device_of


class LoadedClip(NamedTuple):
    """An open_clip model with its preprocessing and tokenizer, and whether it is trained."""

    model: nn.Module
    preprocess: object  # a torchvision transform: PIL image -> normalised (3, 224, 224) tensor
    tokenizer: object  # list[str] -> LongTensor (N, 77)
    pretrained: bool


def load_clip(name: str = "ViT-B-32", pretrained: str = "openai") -> LoadedClip:
    """Build open_clip model ``name`` with weights ``pretrained``, or random weights, loudly.

    Offline (the ``smoke`` profile, or ``IMGCLS_OFFLINE=1``) only weights already in the local
    Hugging Face cache can load; otherwise the same architecture is built with random weights,
    and a box says that every number it produces is chance. open_clip's own warning about
    random weights is silenced because that box replaces it.
    """
    offline = is_offline()
    if offline:
        # huggingface_hub reads this when it is imported (by open_clip, next line); without it
        # a download that cannot succeed is retried for about 30 seconds before giving up.
        os.environ["HF_HUB_OFFLINE"] = "1"
    import open_clip

    # open_clip logs a download ERROR and a random-weights WARNING through the root logger;
    # the box below says both things in the book's own words, so its log lines are muted.
    # OpenAI's CLIP weights were trained with QuickGELU, x * sigmoid(1.702 x), but open_clip's
    # "ViT-B-32" config builds nn.GELU. Loading those weights into it works, with only a
    # warning, and every embedding comes out slightly wrong. The weights' own config says
    # which activation they need; the random fallback gets the same architecture.
    tag = open_clip.get_pretrained_cfg(name, pretrained)
    quick_gelu = bool(tag.get("quick_gelu", False))
    previous = logging.root.manager.disable
    logging.disable(logging.ERROR)
    try:
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                name, pretrained=pretrained, force_quick_gelu=quick_gelu
            )
            loaded, reason = True, ""
        except Exception as err:  # noqa: BLE001  network, missing cache, HTTP or corrupt files
            loaded, reason = False, f"{type(err).__name__}: {str(err).split('. ')[0][:200]}"
            model, _, preprocess = open_clip.create_model_and_transforms(
                name, pretrained=None, force_quick_gelu=quick_gelu
            )
    finally:
        logging.disable(previous)
    if not loaded:
        where = "this profile is offline and they are not cached" if offline else reason
        announce(
            f"RANDOM WEIGHTS: the CLIP weights {name}/{pretrained} could not be loaded ({where}). "
            "The model has the right architecture but random weights, so every similarity, "
            "probability and accuracy it gives is chance. Run with internet (e.g. in Colab) "
            "to see what a trained CLIP does."
        )
    model.eval()
    return LoadedClip(model, preprocess, open_clip.get_tokenizer(name), loaded)


def build_prompts(classnames: Sequence[str], templates: Sequence[str]) -> list[list[str]]:
    """One list of prompts per class: every template with ``{}`` filled by the class name."""
    return [[template.format(name) for template in templates] for name in classnames]


@torch.no_grad()
def encode_texts(model: nn.Module, tokenizer, texts: Sequence[str]) -> torch.Tensor:
    """Unit-length text embeddings (N, D) of a list of sentences."""
    tokens = tokenizer(list(texts)).to(device_of(model))
    return F.normalize(model.encode_text(tokens).float(), dim=-1)


@torch.no_grad()
def text_classifier(
    model: nn.Module, tokenizer, classnames: Sequence[str], templates: Sequence[str]
) -> torch.Tensor:
    """The zero-shot "weights": one unit vector per class, shape (C, D).

    Prompt ensembling: embed every template filled with the class name, normalise each, take
    the mean over templates and normalise again, so each class is the average direction of
    its prompts and no single wording decides.
    """
    prompts = build_prompts(classnames, templates)
    flat = [text for per_class in prompts for text in per_class]
    embeddings = encode_texts(model, tokenizer, flat).view(len(classnames), len(templates), -1)
    return F.normalize(embeddings.mean(dim=1), dim=-1)


@torch.no_grad()
def image_features(
    model: nn.Module, images: torch.Tensor | Iterable, *, batch_size: int = 64
) -> torch.Tensor:
    """Unit-length image embeddings (N, D) on the CPU.

    ``images`` is a preprocessed float tensor (N, 3, H, W), or an iterable of batches (a
    ``DataLoader`` or ``TensorLoader``: tensors or ``(images, labels)`` pairs).
    """
    device = device_of(model)
    batches = images.split(batch_size) if isinstance(images, torch.Tensor) else images
    features = []
    for batch in batches:
        x = batch[0] if isinstance(batch, list | tuple) else batch
        features.append(F.normalize(model.encode_image(x.to(device)).float(), dim=-1).cpu())
    return torch.cat(features)


def zero_shot_logits(
    image_features: torch.Tensor, class_weights: torch.Tensor, scale: float = 100.0
) -> torch.Tensor:
    """``scale`` x cosine similarity of every image with every class: logits (N, C).

    Both inputs must be unit length, so the matrix product is the cosine similarity. CLIP
    learned ``scale`` (its logit scale, 100 for the released models); cosines lie in
    [-1, 1], and multiplying by it makes the softmax confident enough to be useful.
    """
    return scale * image_features @ class_weights.to(image_features.device).T


def few_shot_indices(labels, k: int, seed: int = 0) -> np.ndarray:
    """Indices of ``k`` random examples of every class (all of a class if it has fewer)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    picked = [rng.permutation(np.flatnonzero(labels == c))[:k] for c in np.unique(labels)]
    return np.sort(np.concatenate(picked))


def linear_probe(
    train_features, train_labels, test_features, test_labels, *, C: float = 1.0
) -> float:
    """Accuracy of a logistic regression (scikit-learn) trained on frozen features.

    The standard way to ask "how good are these features?": the encoder stays fixed and
    only a linear classifier is fitted on top. Features are standardised first: unit-length
    embeddings have tiny coordinates, and without it the default regularisation (``C``, the
    inverse strength) would be far too strong for them.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))
    with warnings.catch_warnings():
        # A few-shot probe has few examples per class by design (one per class: as many
        # classes as examples). scikit-learn then guesses that the labels might be a
        # regression target and warns; here they are class labels, so the guess is wrong.
        warnings.filterwarnings("ignore", "The number of unique classes is greater than 50%")
        probe.fit(np.asarray(train_features), np.asarray(train_labels))
    return float(probe.score(np.asarray(test_features), np.asarray(test_labels)))
