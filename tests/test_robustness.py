"""Tests for imgcls_helpers.robustness: each corruption measured on real photographs (its
strength grows with severity and matches the ImageNet-C parameter), accuracy curves of models
whose answers are known in advance, the summary and the figure."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import skimage.data  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from skimage.color import hsv2rgb, rgb2hsv  # noqa: E402
from torch import nn  # noqa: E402

from imgcls_helpers.metrics import accuracy  # noqa: E402
from imgcls_helpers.robustness import (  # noqa: E402
    CORRUPTIONS,
    SEVERITIES,
    corrupt,
    corruption_accuracy,
    plot_corruption_curves,
    summary,
)
from imgcls_helpers.synthetic import make_shapes  # noqa: E402

MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    """Three photographs shipped with scikit-image, 96 x 96, as a uint8 (3, 3, 96, 96) batch."""
    photos = [skimage.data.astronaut(), skimage.data.chelsea(), skimage.data.coffee()]
    resized = [
        F.interpolate(
            torch.from_numpy(p).permute(2, 0, 1)[None].float(),
            size=(96, 96),
            mode="bilinear",
            antialias=True,
        )
        for p in photos
    ]
    return torch.cat(resized).round().clamp(0, 255).to(torch.uint8)


def distortion(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().mean().item()


# --- corrupt: shape, identity, growing strength --------------------------------------------


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_severity_zero_is_the_clean_image_and_output_keeps_dtype_and_shape(photos, name):
    assert torch.equal(corrupt(photos, name, 0), photos)
    for severity in SEVERITIES:
        out = corrupt(photos, name, severity)
        assert out.dtype == torch.uint8 and out.shape == photos.shape
    # the input is never modified in place
    assert torch.equal(photos, corrupt(photos, name, 0))


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_distortion_grows_strictly_with_severity(photos, name):
    errors = [distortion(corrupt(photos, name, s), photos) for s in range(6)]
    assert errors[0] == 0
    assert all(a < b for a, b in zip(errors, errors[1:], strict=False)), errors


def test_noise_has_the_imagenet_c_standard_deviation():
    grey = torch.full((4, 3, 64, 64), 128, dtype=torch.uint8)  # far from 0 and 255: no clipping
    for severity, c in [(1, 0.08), (2, 0.12)]:
        noise = (corrupt(grey, "gaussian_noise", severity).float() - 128) / 255
        assert noise.std().item() == pytest.approx(c, rel=0.02)
        assert abs(noise.mean().item()) < 0.005


def test_noise_is_deterministic_per_seed_and_leaves_the_global_generator_alone(photos):
    state = torch.get_rng_state()
    first = corrupt(photos, "gaussian_noise", 3, seed=1)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(first, corrupt(photos, "gaussian_noise", 3, seed=1))
    assert not torch.equal(first, corrupt(photos, "gaussian_noise", 3, seed=2))


@pytest.mark.parametrize(
    ("size", "severity", "sigma"),
    [(224, 1, 1.0), (224, 2, 2.0), (112, 5, 3.0), (56, 5, 1.5), (448, 1, 2.0)],
)
def test_blur_sigma_is_the_imagenet_c_one_scaled_by_image_size(size, severity, sigma):
    # A sharp vertical edge blurred by a Gaussian: the slope of each row is that Gaussian,
    # so its spread (standard deviation) is the blur's sigma in pixels.
    edge = torch.zeros(1, 3, size, size, dtype=torch.uint8)
    edge[..., size // 2 :] = 255
    row = corrupt(edge, "gaussian_blur", severity)[0, 0, size // 2].double()
    slope = row.diff() / row.diff().sum()
    x = torch.arange(len(slope), dtype=torch.double)
    centre = (slope * x).sum()
    spread = (slope * (x - centre) ** 2).sum().sqrt().item()
    assert spread == pytest.approx(sigma, rel=0.03)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_brightness_adds_to_hsv_value_as_the_reference_does(photos, severity):
    """Against the reference's own recipe: skimage's rgb2hsv, V + c clipped, hsv2rgb."""
    c = (0.1, 0.2, 0.3, 0.4, 0.5)[severity - 1]
    # the photos and a few pure colours, black and white (black has V = 0)
    special = torch.tensor([[0, 0, 0], [255, 255, 255], [255, 0, 0], [10, 200, 30], [1, 0, 2]])
    images = torch.cat([photos, special.T.reshape(1, 3, 5, 1).expand(3, 3, 5, 96)], dim=2)
    images = images.to(torch.uint8).contiguous()
    expected = []
    for image in images.permute(0, 2, 3, 1).numpy():
        hsv = rgb2hsv(image / 255.0)
        hsv[..., 2] = np.clip(hsv[..., 2] + c, 0, 1)
        expected.append(np.round(np.clip(hsv2rgb(hsv), 0, 1) * 255))
    expected = torch.from_numpy(np.stack(expected)).permute(0, 3, 1, 2)
    out = corrupt(images, "brightness", severity)
    assert (out.double() - expected).abs().max().item() <= 1  # rounding of float32 vs float64
    assert out.float().mean() > images.float().mean()
    # black becomes grey c; a pixel already at V = 1 (white, pure red) keeps its colour
    assert out[0, :, 96, 0].tolist() == [round(255 * c)] * 3
    assert out[0, :, 97, 0].tolist() == [255, 255, 255]
    assert out[0, :, 98, 0].tolist() == [255, 0, 0]


@pytest.mark.parametrize("severity", SEVERITIES)
def test_contrast_scales_each_channels_spread_by_c_and_keeps_its_mean(photos, severity):
    c = (0.4, 0.3, 0.2, 0.1, 0.05)[severity - 1]
    out = corrupt(photos, "contrast", severity).float()
    before = photos.float()
    ratio = out.std(dim=(2, 3)) / before.std(dim=(2, 3))
    assert torch.allclose(ratio, torch.full_like(ratio, c), atol=0.003)
    assert torch.allclose(out.mean(dim=(2, 3)), before.mean(dim=(2, 3)), atol=0.5)


def blockiness(images: torch.Tensor) -> float:
    """Mean jump between columns 8k-1 and 8k (JPEG block edges) over the mean jump elsewhere."""
    jumps = (images.float().diff(dim=-1)).abs().mean(dim=(0, 1, 2))
    at_edge = (torch.arange(len(jumps)) % 8) == 7
    return (jumps[at_edge].mean() / jumps[~at_edge].mean()).item()


def test_lower_jpeg_quality_gives_stronger_8x8_block_artefacts(photos):
    scores = [blockiness(corrupt(photos, "jpeg", s)) for s in range(6)]
    assert scores[0] < 1.1  # a photo has no preferred 8-pixel grid
    assert scores[1] > 1.2
    assert all(a < b for a, b in zip(scores, scores[1:], strict=False)), scores


# --- corrupt: bad input -------------------------------------------------------------------


def test_unknown_name_or_severity_names_the_valid_ones(photos):
    with pytest.raises(ValueError, match="gaussian_noise.*contrast"):
        corrupt(photos, "fog", 1)
    for bad in (6, -1, 2.0):
        with pytest.raises(ValueError, match=r"\(1, 2, 3, 4, 5\)"):
            corrupt(photos, "jpeg", bad)


def test_bad_images_get_clear_errors(photos):
    with pytest.raises(TypeError, match="uint8"):
        corrupt(photos.float() / 255, "contrast", 1)
    with pytest.raises(TypeError, match="torch.Tensor"):
        corrupt(photos.numpy(), "contrast", 1)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\).*\(3, 96, 96\)"):
        corrupt(photos[0], "contrast", 1)
    with pytest.raises(ValueError, match=r"\(3, 1, 96, 96\)"):
        corrupt(photos[:, :1], "contrast", 1)


# --- corruption_accuracy: models whose accuracy is known -----------------------------------


class MeanBrightness(nn.Module):
    """Class 1 when an image's mean pixel value in [0, 1] is above 0.5, else class 0.

    It undoes MEAN/STD itself, so it only works when its input was normalised with them.
    It records whether it ran in eval mode without gradients.
    """

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x):
        self.calls.append((self.training, torch.is_grad_enabled(), len(x)))
        mean = torch.tensor(MEAN).view(1, 3, 1, 1)
        std = torch.tensor(STD).view(1, 3, 1, 1)
        bright = (x * std + mean).mean(dim=(1, 2, 3)) > 0.5
        return F.one_hot(bright.long(), 2).float()


def grey_images(levels) -> torch.Tensor:
    return torch.tensor(levels, dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 3, 16, 16)


def test_accuracy_curves_of_a_brightness_threshold_are_the_hand_computed_ones():
    # Flat grey images: 40 (V = 0.157, class 0) and 215 (class 1). Blur, contrast and JPEG
    # leave a flat image as it is; zero-mean noise barely moves its mean; brightness adds
    # 0.1 .. 0.5 to V, which pushes the dark ones over 0.5 from severity 4 (0.157 + 0.4).
    images = grey_images([40, 215] * 6)
    labels = torch.tensor([0, 1] * 6)
    model = MeanBrightness().train()
    results = corruption_accuracy(model, images, labels, mean=MEAN, std=STD, batch_size=5)
    assert results["brightness"] == [1, 1, 1, 1, 0.5, 0.5]
    for name in ("gaussian_noise", "gaussian_blur", "jpeg", "contrast"):
        assert results[name] == [1] * 6, name
    assert list(results) == list(CORRUPTIONS)
    # eval mode, no gradients, batches of at most 5, and the mode is put back afterwards
    assert {(training, grad) for training, grad, _ in model.calls} == {(False, False)}
    assert max(n for _, _, n in model.calls) == 5
    assert model.training


def test_a_constant_model_scores_its_class_frequency_everywhere():
    class AlwaysTwo(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.zeros(1))  # the device is read from here

        def forward(self, x):
            return F.one_hot(torch.full((len(x),), 2), 4).float() + self.weight

    labels = torch.tensor([0, 2, 1, 2, 3, 2, 0])
    images = grey_images([30, 60, 90, 120, 150, 180, 210])
    results = corruption_accuracy(AlwaysTwo(), images, labels, mean=MEAN, std=STD)
    assert results == {name: [3 / 7] * 6 for name in CORRUPTIONS}


def test_clean_accuracy_is_plain_accuracy_on_normalised_images():
    data = make_shapes(40, size=32, seed=3)
    images = torch.from_numpy(data.images).permute(0, 3, 1, 2).contiguous()
    labels = torch.from_numpy(data.labels)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 8))
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    expected = accuracy(model((images.float() / 255 - mean) / std), labels)
    assert 0 < expected < 1  # a random model: neither all right nor all wrong
    results = corruption_accuracy(
        model, images, labels, mean=MEAN, std=STD, batch_size=16, corruptions=("jpeg", "contrast")
    )
    assert list(results) == ["jpeg", "contrast"]
    for curve in results.values():
        assert curve[0] == pytest.approx(expected)
        assert len(curve) == 6


class TopLeftPixel(nn.Module):
    """Class 1 when the red value of the top-left pixel, un-normalised, is above 0.5."""

    def forward(self, x):
        bright = x[:, 0, 0, 0] * STD[0] + MEAN[0] > 0.5
        return F.one_hot(bright.long(), 2).float()


def test_noise_follows_the_seed_and_matches_corrupt():
    # Mid-grey images labelled 1: whether noise pushes the top-left pixel below 0.5 is a coin
    # flip per image, so the accuracy is that of the noise drawn for the given seed.
    images, labels = grey_images([128] * 60), torch.ones(60, dtype=torch.long)
    expected = {}
    for seed in (0, 1):
        noisy = corrupt(images, "gaussian_noise", 3, seed=seed)
        expected[seed] = (noisy[:, 0, 0, 0] > 127.5).float().mean().item()
    assert expected[0] != expected[1]
    for seed in (0, 1):
        results = corruption_accuracy(
            TopLeftPixel(),
            images,
            labels,
            mean=MEAN,
            std=STD,
            seed=seed,
            corruptions=("gaussian_noise",),
        )
        assert results["gaussian_noise"][3] == pytest.approx(expected[seed])
        assert results["gaussian_noise"][0] == 1


def test_corruption_accuracy_rejects_bad_input():
    images, model = grey_images([40, 215]), MeanBrightness()
    with pytest.raises(ValueError, match="2 images but labels of shape"):
        corruption_accuracy(model, images, torch.tensor([0, 1, 1]), mean=MEAN, std=STD)
    with pytest.raises(ValueError, match="unknown corruption 'fog'"):
        corruption_accuracy(
            model, images, torch.tensor([0, 1]), mean=MEAN, std=STD, corruptions=("fog",)
        )
    with pytest.raises(TypeError, match="uint8"):
        corruption_accuracy(model, images.float(), torch.tensor([0, 1]), mean=MEAN, std=STD)


# --- summary and figure ---------------------------------------------------------------------


def test_summary_of_hand_made_results():
    results = {
        "jpeg": [0.8, 0.8, 0.7, 0.6, 0.5, 0.4],  # mean 0.6
        "contrast": [0.8, 0.6, 0.4, 0.3, 0.2, 0.0],  # mean 0.3
    }
    s = summary(results)
    assert s["clean"] == 0.8
    assert s["mean_corrupted"] == pytest.approx(0.45)
    assert s["relative_drop"] == pytest.approx(0.35 / 0.8)
    assert s["per_corruption"]["jpeg"] == pytest.approx(
        {"mean_corrupted": 0.6, "relative_drop": 0.25, "severity_5": 0.4}
    )
    assert s["per_corruption"]["contrast"]["relative_drop"] == pytest.approx(0.625)
    assert s["per_corruption"]["contrast"]["severity_5"] == 0.0
    assert math.isnan(summary({"jpeg": [0.0] * 6})["relative_drop"])
    with pytest.raises(ValueError, match="6 accuracies"):
        summary({"jpeg": [0.8, 0.7]})


def test_plot_has_a_curve_per_corruption_a_dashed_clean_line_and_a_legend_beside_it():
    results = {name: [0.9, 0.8, 0.7 - i / 20, 0.5, 0.3, 0.1] for i, name in enumerate(CORRUPTIONS)}
    fig = plot_corruption_curves(results, title="robustness")
    ax = fig.axes[0]
    curves = [line for line in ax.get_lines() if line.get_linestyle() == "-"]
    assert [line.get_label() for line in curves] == list(CORRUPTIONS)
    for line, curve in zip(curves, results.values(), strict=True):
        assert list(line.get_xdata()) == [0, 1, 2, 3, 4, 5]
        assert list(line.get_ydata()) == curve
        assert line.get_marker() not in (None, "None", "")
    dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == 1 and set(dashed[0].get_ydata()) == {0.9}
    assert ax.get_title() == "robustness"
    fig.canvas.draw()
    legend_box = ax.get_legend().get_window_extent()
    assert not legend_box.overlaps(ax.get_window_extent())
    assert {t.get_text() for t in ax.get_legend().get_texts()} == {*CORRUPTIONS, "clean"}
