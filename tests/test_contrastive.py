"""The tiny CLIP: tokenizer, the symmetric InfoNCE loss against a hand computation, and the
claim the chapter rests on: trained on captions, it names shapes in colours it never saw
them in far better than chance."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from imgcls_helpers import contrastive, synthetic, zeroshot


def test_word_tokenizer_pads_and_marks_unknown_words():
    tokenizer = contrastive.WordTokenizer(["a red star", "a blue ring"])
    tokens = tokenizer(["a red ring", "a photo"])
    assert tokens.shape == (2, 3)
    assert tokens[1, 1] == contrastive.UNKNOWN and tokens[1, 2] == contrastive.PAD
    assert len(tokenizer) == 5 + 2  # a, blue, red, ring, star + PAD + UNKNOWN


def test_text_encoder_ignores_padding_and_unknown_words():
    tokenizer = contrastive.WordTokenizer(["a red star"])
    model = contrastive.TinyCLIP(len(tokenizer), dim=8, width=4)
    plain, noisy = model.encode_text(tokenizer(["red star", "red zebra star photo"]))
    assert torch.allclose(plain, noisy, atol=1e-6)


def test_clip_loss_matches_a_hand_computation():
    torch.manual_seed(0)
    image, text = F.normalize(torch.randn(3, 5), dim=-1), F.normalize(torch.randn(3, 5), dim=-1)
    sims = (10.0 * image @ text.T).tolist()
    rows = [-math.log(math.exp(r[i]) / sum(math.exp(v) for v in r)) for i, r in enumerate(sims)]
    cols = [list(c) for c in zip(*sims, strict=True)]
    columns = [-math.log(math.exp(c[i]) / sum(math.exp(v) for v in c)) for i, c in enumerate(cols)]
    expected = (sum(rows) / 3 + sum(columns) / 3) / 2
    assert abs(contrastive.clip_loss(image, text, 10.0).item() - expected) < 1e-5


def test_clip_loss_is_small_when_pairs_match_and_large_when_shuffled():
    features = F.normalize(torch.eye(4), dim=-1)
    assert contrastive.clip_loss(features, features, 100.0) < 1e-3
    assert contrastive.clip_loss(features, features.roll(1, dims=0), 100.0) > 10


def _pixels(data, keep):
    images = torch.from_numpy(data.images[keep]).permute(0, 3, 1, 2).float() / 255
    return (images - 0.5) / 0.25


def test_tiny_clip_names_shapes_in_held_out_colours_above_chance():
    torch.manual_seed(0)
    colours = list(synthetic.COLOURS)
    held_out = {(shape, colours[(3 * i + 1) % 8]) for i, shape in enumerate(synthetic.SHAPES)}

    def is_held_out(data):
        pairs = zip((data.classes[y] for y in data.labels), data.colours, strict=True)
        return np.array([pair in held_out for pair in pairs])

    train = synthetic.make_shapes(1200, difficulty="easy", seed=0)
    seen = ~is_held_out(train)
    captions = [c for c, keep in zip(train.captions(), seen, strict=True) if keep]
    tokenizer = contrastive.WordTokenizer(captions)
    model = contrastive.TinyCLIP(len(tokenizer), width=16)
    losses = contrastive.train_contrastive(
        model, _pixels(train, seen), tokenizer(captions), epochs=6, batch_size=32
    )
    assert np.mean(losses[-5:]) < losses[0] / 2

    test = synthetic.make_shapes(800, difficulty="easy", seed=1)
    new = is_held_out(test)  # combinations the model never saw in training
    weights = zeroshot.text_classifier(model, tokenizer, synthetic.SHAPES, ["a {}"])
    features = zeroshot.image_features(model, _pixels(test, new))
    accuracy = zeroshot.zero_shot_logits(features, weights).argmax(1).numpy() == test.labels[new]
    assert accuracy.mean() > 2 / len(synthetic.SHAPES)  # twice chance (1/8); runs give ~0.5


def test_contrastive_training_honours_fast_dev_run(monkeypatch):
    monkeypatch.setenv("IMGCLS_FAST_DEV_RUN", "2")
    shapes = synthetic.make_shapes(64, seed=0)
    tokenizer = contrastive.WordTokenizer(shapes.captions())
    model = contrastive.TinyCLIP(len(tokenizer), dim=16, width=4)
    images = torch.from_numpy(shapes.images).permute(0, 3, 1, 2).float() / 255
    tokens = tokenizer(shapes.captions())
    losses = contrastive.train_contrastive(model, images, tokens, epochs=5, batch_size=8)
    assert len(losses) == 2  # one epoch of two batches instead of 5 x 8 steps
