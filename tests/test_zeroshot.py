"""Zero-shot helpers: prompts, prompt ensembling, logits and probes, checked against hand
computations, on a random-weight open_clip ViT-B-32 and on a toy model with known embeddings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from imgcls_helpers import zeroshot


def test_build_prompts_fills_every_template_for_every_class():
    prompts = zeroshot.build_prompts(["cat", "dog"], ["a {}", "a photo of a {}."])
    assert prompts == [["a cat", "a photo of a cat."], ["a dog", "a photo of a dog."]]


class ToyModel(nn.Module):
    """encode_text sums a fixed vector per token id (0 pads); encode_image flattens the image."""

    def __init__(self):
        super().__init__()
        self.table = nn.Embedding(10, 4, padding_idx=0)

    def encode_text(self, tokens):
        return self.table(tokens).sum(dim=1)

    def encode_image(self, images):
        return images.flatten(1)


def toy_tokenizer(texts):
    ids = [[len(word) for word in text.split()] for text in texts]  # a word's id: its length
    longest = max(len(row) for row in ids)
    return torch.tensor([row + [0] * (longest - len(row)) for row in ids])


def test_text_classifier_averages_normalised_prompts_and_renormalises():
    model = ToyModel()
    weights = zeroshot.text_classifier(model, toy_tokenizer, ["ab", "abcd"], ["{}", "x {}"])
    assert weights.shape == (2, 4)
    for row, name in zip(weights, ["ab", "abcd"], strict=True):
        tokens = toy_tokenizer([name, f"x {name}"])
        by_hand = F.normalize(model.encode_text(tokens), dim=-1).mean(0)
        assert torch.allclose(row, by_hand / by_hand.norm(), atol=1e-6)


def test_image_features_are_unit_length_and_accept_batches_and_pairs():
    model, images = ToyModel(), torch.randn(5, 1, 2, 2)
    whole = zeroshot.image_features(model, images, batch_size=2)
    assert torch.allclose(whole.norm(dim=-1), torch.ones(5), atol=1e-6)
    pairs = [(images[:3], torch.zeros(3)), (images[3:], torch.zeros(2))]
    assert torch.allclose(zeroshot.image_features(model, pairs), whole)
    assert torch.allclose(whole, F.normalize(images.flatten(1), dim=-1))


def test_zero_shot_logits_are_scaled_cosine_similarities():
    images, classes = F.normalize(torch.randn(3, 8), dim=-1), F.normalize(torch.randn(4, 8), dim=-1)
    logits = zeroshot.zero_shot_logits(images, classes, scale=50.0)
    expected = 50.0 * F.cosine_similarity(images[:, None], classes[None], dim=-1)
    assert torch.allclose(logits, expected, atol=1e-5)


def test_few_shot_indices_take_k_of_each_class_without_repeats():
    labels = np.array([0, 1, 2] * 10 + [3])
    picked = zeroshot.few_shot_indices(labels, k=4, seed=1)
    assert len(set(picked)) == len(picked)
    counts = np.bincount(labels[picked])
    assert counts.tolist() == [4, 4, 4, 1]  # class 3 has one example only


def test_linear_probe_standardises_then_fits_logistic_regression():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5)) * 0.01  # small coordinates, like unit-length embeddings
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    scaled = (x - x[:100].mean(0)) / x[:100].std(0)  # what StandardScaler does
    probe = LogisticRegression(max_iter=2000).fit(scaled[:100], y[:100])
    expected = probe.score(scaled[100:], y[100:])
    assert zeroshot.linear_probe(x[:100], y[:100], x[100:], y[100:]) == pytest.approx(expected)
    assert expected > 0.9


def test_zero_shot_pipeline_on_random_open_clip(capsys):
    # The tests run offline (conftest), so the weights cannot load: random ones, announced.
    model, preprocess, tokenizer, pretrained = zeroshot.load_clip("ViT-B-32", "openai")
    assert pretrained is False
    assert "RANDOM WEIGHTS" in capsys.readouterr().out
    from PIL import Image

    images = torch.stack([preprocess(Image.new("RGB", (64, 48), c)) for c in ("red", "blue")])
    assert images.shape == (2, 3, 224, 224)
    weights = zeroshot.text_classifier(model, tokenizer, ["cat", "dog", "car"], ["a {}", "{}!"])
    features = zeroshot.image_features(model, images)
    assert weights.shape == (3, 512) and features.shape == (2, 512)
    assert torch.allclose(weights.norm(dim=-1), torch.ones(3), atol=1e-5)
    logits = zeroshot.zero_shot_logits(features, weights)
    assert torch.allclose(logits, 100 * features @ weights.T, atol=1e-4)
    probs = logits.softmax(dim=-1)
    assert torch.allclose(probs.sum(dim=-1), torch.ones(2), atol=1e-5)


def test_openai_weights_get_the_quickgelu_they_were_trained_with(recwarn):
    # OpenAI's CLIP was trained with QuickGELU; open_clip's plain "ViT-B-32" config uses
    # nn.GELU and only warns when the two are mixed. The random fallback (offline here) must
    # already have the architecture the real weights need.
    from open_clip.transformer import QuickGELU

    model = zeroshot.load_clip("ViT-B-32", "openai").model
    activations = {type(m).__name__ for m in model.modules() if isinstance(m, QuickGELU | nn.GELU)}
    assert activations == {"QuickGELU"}
    assert not [w for w in recwarn if "QuickGELU" in str(w.message)]


def test_a_one_shot_probe_of_many_classes_fits_without_a_warning(recwarn):
    # 1-shot on 102 classes: as many classes as examples. scikit-learn's guess that such
    # labels are a regression target is wrong for a probe and must not reach the page.
    rng = np.random.default_rng(0)
    labels = np.arange(102)
    features = rng.normal(size=(102, 16)) + labels[:, None] * 0.1
    accuracy = zeroshot.linear_probe(features, labels, features, labels)
    assert accuracy == 1.0  # it still fits: every training example is classified right
    assert not [w for w in recwarn if "unique classes" in str(w.message)]


class _Stop(Exception):
    pass


@pytest.mark.parametrize(("profile", "expected"), [("smoke", "1"), ("cpu", None)])
def test_load_clip_tells_the_hub_it_is_offline_before_open_clip_asks(
    monkeypatch, profile, expected
):
    """huggingface_hub reads HF_HUB_OFFLINE when open_clip imports it; offline, load_clip must
    have set it by then (else a doomed download is retried for 30 s), and online it must not."""
    import os
    import sys
    import types

    seen = {}

    def get_pretrained_cfg(name, pretrained):
        seen["HF_HUB_OFFLINE"] = os.environ.get("HF_HUB_OFFLINE")
        raise _Stop

    monkeypatch.setenv("IMGCLS_PROFILE", profile)
    monkeypatch.delenv("IMGCLS_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    fake = types.SimpleNamespace(get_pretrained_cfg=get_pretrained_cfg)
    monkeypatch.setitem(sys.modules, "open_clip", fake)
    with pytest.raises(_Stop):
        zeroshot.load_clip()
    assert seen["HF_HUB_OFFLINE"] == expected
