"""A CLIP small enough to train on a laptop in seconds, for the generated shapes and captions.

Real CLIP learns from 400 million image-caption pairs. The idea, though, fits in a few lines:
an image encoder and a text encoder map a matching (image, caption) pair to nearby unit
vectors and non-matching pairs apart, trained with a symmetric cross-entropy over the
similarity matrix of a batch. Here the image encoder is a four-layer CNN, the text encoder
the average of learned word embeddings (the captions have a vocabulary of a couple of dozen
words, so a word-level tokenizer replaces CLIP's byte-pair encoding), and the model has the
same ``encode_image`` / ``encode_text`` methods as open_clip, so :mod:`imgcls_helpers.zeroshot`
classifies with both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .models import conv_bn_relu
from .train import capped, capped_epochs, capped_steps

PAD, UNKNOWN = 0, 1  # token ids reserved for padding and for words not in the vocabulary


class WordTokenizer:
    """Split on spaces and map each word to an id; pad every sentence to the longest one.

    Words never seen when the vocabulary was built map to ``UNKNOWN``, whose embedding the
    text encoder ignores, so "a photo of a star" reads as "a a star".
    """

    def __init__(self, sentences: Sequence[str]):
        words = sorted({word for sentence in sentences for word in sentence.lower().split()})
        self.vocab = {word: i + 2 for i, word in enumerate(words)}

    def __len__(self) -> int:
        return len(self.vocab) + 2

    def __call__(self, sentences: Sequence[str]) -> torch.Tensor:
        ids = [[self.vocab.get(w, UNKNOWN) for w in s.lower().split()] for s in sentences]
        longest = max(1, *(len(row) for row in ids))
        return torch.tensor([row + [PAD] * (longest - len(row)) for row in ids])


class TinyCLIP(nn.Module):
    """A small CNN for images and a bag of word embeddings for text, into one ``dim``-space.

    ``logit_scale`` is the learnable log of the inverse temperature, started at log(1/0.07)
    as in CLIP; :meth:`forward` returns unit-length features and ``exp(logit_scale)``.
    """

    def __init__(self, vocab_size: int, dim: int = 64, width: int = 32):
        super().__init__()

        self.image_encoder = nn.Sequential(
            *conv_bn_relu(3, width),
            nn.MaxPool2d(2),
            *conv_bn_relu(width, 2 * width),
            nn.MaxPool2d(2),
            *conv_bn_relu(2 * width, 4 * width),
            nn.MaxPool2d(2),
            *conv_bn_relu(4 * width, 4 * width),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(4 * width, dim),
        )
        # padding_idx: the padding id gets a zero vector and no gradient; encode_text then
        # averages over the known words only (padding and UNKNOWN are masked out).
        self.word_embedding = nn.Embedding(vocab_size, dim, padding_idx=PAD)
        self.text_projection = nn.Linear(dim, dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return self.image_encoder(images)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        known = (tokens > UNKNOWN).unsqueeze(-1).float()
        summed = (self.word_embedding(tokens) * known).sum(dim=1)
        return self.text_projection(summed / known.sum(dim=1).clamp(min=1))

    def forward(self, images: torch.Tensor, tokens: torch.Tensor):
        image_features = F.normalize(self.encode_image(images), dim=-1)
        text_features = F.normalize(self.encode_text(tokens), dim=-1)
        return image_features, text_features, self.logit_scale.exp()


def clip_loss(
    image_features: torch.Tensor, text_features: torch.Tensor, scale: torch.Tensor | float
) -> torch.Tensor:
    """Symmetric InfoNCE: image i must pick caption i among the batch's captions, and back.

    Row i of the (B, B) similarity matrix scores image i against every caption; the right
    "class" of row i is i. Cross-entropy over rows (image -> text) and over columns
    (text -> image), averaged.
    """
    logits = scale * image_features @ text_features.T
    targets = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def train_contrastive(
    model: TinyCLIP,
    images: torch.Tensor,
    tokens: torch.Tensor,
    *,
    epochs: int = 10,
    batch_size: int = 128,
    lr: float = 3e-3,
    loss_fn=clip_loss,
    seed: int = 0,
) -> list[float]:
    """Train on matching (image, caption-token) pairs with AdamW; return the loss per step.

    ``images`` are normalised floats (N, 3, H, W) on the model's device. The logit scale is
    clamped to at most 100, as CLIP does, to keep training stable.
    Honours ``IMGCLS_FAST_DEV_RUN`` (:func:`~imgcls_helpers.train.fast_dev_run`) like ``fit``.
    """
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    epochs = capped_epochs(epochs)
    steps = epochs * capped_steps(math.ceil(len(images) / batch_size))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=generator).to(images.device)
        for batch in capped(order.split(batch_size)):
            if len(batch) < 2:  # one pair has no negatives to contrast with
                continue
            loss = loss_fn(*model(images[batch], tokens[batch].to(images.device)))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            with torch.no_grad():
                model.logit_scale.clamp_(max=math.log(100))
            losses.append(loss.item())
    model.eval()
    return losses
