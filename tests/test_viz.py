"""Tests for imgcls_helpers.viz: what the figures contain, read back from matplotlib."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402

from imgcls_helpers.data import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from imgcls_helpers.train import History  # noqa: E402
from imgcls_helpers.viz import (  # noqa: E402
    markdown_table,
    plot_history,
    plot_probabilities,
    show_images,
)

CLASSES = ["cat", "dog", "fox", "owl"]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def suptitle(fig) -> str:
    if hasattr(fig, "get_suptitle"):  # matplotlib >= 3.8
        return fig.get_suptitle()
    return fig._suptitle.get_text() if fig._suptitle is not None else ""


def image_axes(fig):
    return [ax for ax in fig.axes if ax.images]


def shown(ax) -> np.ndarray:
    return np.asarray(ax.images[0].get_array(), dtype=float)


def test_show_images_tensor_batch_with_mean_std_shows_original_colours():
    torch.manual_seed(0)
    originals = torch.rand(5, 3, 6, 7)
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    batch = (originals - mean) / std
    labels = torch.tensor([0, 3, 1, 1, 2])
    fig = show_images(batch, labels, CLASSES, mean=IMAGENET_MEAN, std=IMAGENET_STD, ncols=3)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 6  # 2 rows x 3 columns
    axes = image_axes(fig)
    assert len(axes) == 5
    assert [ax.get_title() for ax in axes] == ["cat", "owl", "dog", "dog", "fox"]
    for ax, original in zip(axes, originals, strict=True):
        np.testing.assert_allclose(shown(ax), original.permute(1, 2, 0).numpy(), atol=1e-5)
    assert all(not ax.axison for ax in fig.axes)  # a grid of pictures, no tick marks


def test_show_images_uint8_tensor_and_grayscale():
    g = torch.Generator().manual_seed(0)
    batch = torch.randint(0, 256, (3, 1, 5, 5), dtype=torch.uint8, generator=g)
    fig = show_images(batch, [2, 0, 1])
    axes = image_axes(fig)
    assert len(axes) == 3 and len(fig.axes) == 3
    assert [ax.get_title() for ax in axes] == ["2", "0", "1"]  # no classes: the label itself
    for ax, image in zip(axes, batch, strict=True):
        assert shown(ax).shape == (5, 5)
        np.testing.assert_allclose(shown(ax), image[0].numpy() / 255.0)


def test_show_images_list_of_pil_images():
    images = [
        Image.new("RGB", (8, 6), (255, 0, 0)),
        Image.new("L", (8, 6), 128),
        Image.new("RGBA", (4, 4), (0, 0, 255, 10)),
    ]
    fig = show_images(images, [1, 2, 0], CLASSES, title="pets")
    axes = image_axes(fig)
    assert [ax.get_title() for ax in axes] == ["dog", "fox", "cat"]
    assert suptitle(fig) == "pets"
    for ax, image in zip(axes, images, strict=True):
        np.testing.assert_allclose(shown(ax), np.asarray(image.convert("RGB")) / 255.0)


def test_show_images_numpy_uint8_arrays_without_labels():
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (5, 4, 3), dtype=np.uint8) for _ in range(10)]
    fig = show_images(arrays, ncols=4)
    assert len(fig.axes) == 12  # 3 rows x 4 columns, the last two empty
    axes = image_axes(fig)
    assert len(axes) == 10
    assert all(ax.get_title() == "" for ax in fig.axes)
    for ax, array in zip(axes, arrays, strict=True):
        np.testing.assert_allclose(shown(ax), array / 255.0)


def history(losses, accs, val_losses=(), val_accs=()):
    h = History()
    h.epoch = list(range(1, len(losses) + 1))
    h.train_loss, h.train_acc = list(losses), list(accs)
    h.val_loss, h.val_acc = list(val_losses), list(val_accs)
    return h


def line_data(ax):
    return {line.get_label(): line for line in ax.get_lines()}


def test_plot_history_single_with_validation():
    h = history([2.0, 1.5, 1.2], [0.3, 0.5, 0.6], [2.1, 1.7, 1.6], [0.25, 0.4, 0.45])
    fig = plot_history(h, title="run")
    ax_loss, ax_acc = fig.axes
    assert ax_loss.get_ylabel() == "loss" and ax_acc.get_ylabel() == "accuracy"
    assert ax_loss.get_xlabel() == ax_acc.get_xlabel() == "epoch"
    assert suptitle(fig) == "run"
    for ax, train, val in ((ax_loss, h.train_loss, h.val_loss), (ax_acc, h.train_acc, h.val_acc)):
        lines = line_data(ax)
        assert set(lines) == {"train", "val"}
        assert list(lines["train"].get_xdata()) == [1, 2, 3]
        assert list(lines["train"].get_ydata()) == train
        assert list(lines["val"].get_ydata()) == val
        assert lines["val"].get_linestyle() == "--" and lines["train"].get_linestyle() == "-"
        assert lines["val"].get_color() == lines["train"].get_color()
        legend = ax.get_legend()
        assert legend is not None
        assert sorted(t.get_text() for t in legend.get_texts()) == ["train", "val"]


def test_plot_history_without_validation():
    fig = plot_history(history([1.0, 0.5], [0.5, 0.9]))
    assert suptitle(fig) == ""
    for ax in fig.axes:
        assert list(line_data(ax)) == ["train"]


def test_plot_history_dict_of_two():
    runs = {
        "sgd": history([2.0, 1.0], [0.4, 0.6], [2.2, 1.4], [0.3, 0.5]),
        "adam": history([1.8, 0.9, 0.7], [0.5, 0.7, 0.8]),
    }
    fig = plot_history(runs)
    ax_loss, ax_acc = fig.axes
    for ax, key in ((ax_loss, "loss"), (ax_acc, "acc")):
        lines = line_data(ax)
        assert set(lines) == {"sgd train", "sgd val", "adam train"}
        assert list(lines["adam train"].get_ydata()) == getattr(runs["adam"], f"train_{key}")
        assert list(lines["sgd val"].get_ydata()) == getattr(runs["sgd"], f"val_{key}")
        assert lines["sgd val"].get_color() == lines["sgd train"].get_color()
        assert lines["adam train"].get_color() != lines["sgd train"].get_color()
    # the two panels use the same colour for the same run
    assert (
        line_data(ax_loss)["adam train"].get_color() == line_data(ax_acc)["adam train"].get_color()
    )


@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("as_type", [torch.tensor, np.asarray, list])
def test_plot_probabilities_shows_top_k_in_order(k, as_type):
    classes = [f"class{i}" for i in range(8)]
    probs = torch.softmax(torch.randn(8, generator=torch.Generator().manual_seed(3)), dim=0)
    fig = plot_probabilities(as_type(probs.tolist()), classes, k=k, title="top")
    ax = fig.axes[0]
    fig.canvas.draw()
    bars = sorted(ax.patches, key=lambda p: -p.get_y())  # top bar first
    assert len(bars) == k
    top = np.argsort(-probs.numpy())[:k]
    np.testing.assert_allclose([b.get_width() for b in bars], probs.numpy()[top], rtol=1e-6)
    labels = [t.get_text() for t in ax.get_yticklabels()][::-1]  # tick labels run bottom-up
    assert labels == [classes[i] for i in top]
    assert ax.get_xlim() == (0, 1) and ax.get_title() == "top"
    texts = [t.get_text() for t in ax.texts]
    assert sorted(texts) == sorted(f"{p:.1%}" for p in probs.numpy()[top])


def test_plot_probabilities_k_larger_than_classes():
    fig = plot_probabilities([0.2, 0.5, 0.3], ["a", "b", "c"], k=10)
    widths = sorted(p.get_width() for p in fig.axes[0].patches)
    assert widths == pytest.approx([0.2, 0.3, 0.5])


def test_plot_confusion_matrix_rows_are_recall_per_true_class():
    from imgcls_helpers.viz import plot_confusion_matrix

    targets = [0, 0, 0, 0, 1, 1, 2, 3]
    preds = [0, 0, 0, 1, 1, 1, 0, 3]
    fig = plot_confusion_matrix(targets, preds, CLASSES)
    ax = fig.axes[0]
    values = [float(t.get_text()) for t in ax.texts]
    grid = np.array(values).reshape(4, 4)
    np.testing.assert_allclose(grid[0], [0.75, 0.25, 0, 0])
    np.testing.assert_allclose(grid[2], [1, 0, 0, 0])
    assert [t.get_text() for t in ax.get_yticklabels()] == CLASSES


def test_show_feature_maps_draws_one_panel_per_channel_scaled_on_its_own():
    from imgcls_helpers.viz import show_feature_maps

    maps = torch.stack([torch.zeros(5, 5), torch.arange(25.0).view(5, 5) * 100, -torch.ones(5, 5)])
    fig = show_feature_maps(maps, ncols=3)
    shown = [ax.images[0].get_array() for ax in fig.axes if ax.images]
    assert len(shown) == 3
    assert float(np.max(shown[1])) == 1.0 and float(np.min(shown[1])) == 0.0


def test_plot_confusion_matrix_counts_and_column_normalised_into_given_axes():
    from sklearn.metrics import confusion_matrix

    from imgcls_helpers.viz import plot_confusion_matrix

    targets = [0, 0, 0, 0, 1, 1, 2, 3, 3]
    preds = [0, 0, 0, 1, 1, 1, 0, 3, 2]
    fig, (left, right) = plt.subplots(1, 2)
    assert plot_confusion_matrix(targets, preds, CLASSES, normalize=None, ax=left) is fig
    counts = np.array([int(t.get_text()) for t in left.texts]).reshape(4, 4)
    np.testing.assert_array_equal(counts, confusion_matrix(targets, preds))
    assert left.get_title() == "confusion matrix (counts)"
    plot_confusion_matrix(targets, preds, CLASSES, normalize="pred", ax=right, title="cols")
    grid = np.array([float(t.get_text()) for t in right.texts]).reshape(4, 4)
    np.testing.assert_allclose(grid.sum(axis=0), [1, 1, 1, 1], atol=0.011)  # 2-decimal text
    np.testing.assert_allclose(grid[:, 0], [0.75, 0, 0.25, 0])
    assert right.get_title() == "cols"
    assert len(fig.axes) == 2  # nothing else was drawn


def test_plot_confusion_matrix_default_title_is_unchanged():
    from imgcls_helpers.viz import plot_confusion_matrix

    fig = plot_confusion_matrix([0, 1, 2, 3], [0, 1, 2, 2], CLASSES)
    assert fig.axes[0].get_title() == "confusion matrix (each row sums to 1)"


def test_plot_reliability_diagram_bars_are_bin_accuracies_and_gaps():
    from imgcls_helpers.metrics import calibration_bins, expected_calibration_error
    from imgcls_helpers.viz import plot_reliability_diagram

    g = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(300, 4, generator=g)
    targets = torch.randint(0, 4, (300,), generator=g)
    probs = logits.softmax(dim=1)
    fig = plot_reliability_diagram(probs, targets, n_bins=10, title="before")
    ax = fig.axes[0]
    bins = calibration_bins(probs, targets, n_bins=10)
    filled = bins.count > 0
    bars = [p for p in ax.patches if p.get_facecolor()[:3] == matplotlib.colors.to_rgb("tab:blue")]
    gaps = [p for p in ax.patches if p not in bars]
    assert len(bars) == len(gaps) == filled.sum()
    np.testing.assert_allclose([b.get_height() for b in bars], bins.accuracy[filled])
    np.testing.assert_allclose([b.get_x() for b in bars], bins.edges[:-1][filled])
    tops = [gap.get_y() + gap.get_height() for gap in gaps]  # each gap box ends at confidence
    np.testing.assert_allclose(tops, bins.confidence[filled])
    ece = expected_calibration_error(probs, targets, n_bins=10)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert f"gap (ECE = {ece:.3f})" in legend
    diagonal = [line for line in ax.get_lines() if line.get_label() == "perfectly calibrated"]
    assert list(diagonal[0].get_xdata()) == [0, 1] == list(diagonal[0].get_ydata())
    assert ax.get_title() == "before" and ax.get_xlim() == (0, 1)


def test_plot_reliability_diagram_draws_into_given_axes():
    from imgcls_helpers.viz import plot_reliability_diagram

    fig, axes = plt.subplots(1, 2)
    probs = torch.tensor([[0.9, 0.1], [0.7, 0.3]])
    assert plot_reliability_diagram(probs, torch.tensor([0, 1]), ax=axes[1]) is fig
    assert not axes[0].patches and len(axes[1].patches) == 4  # two bins, bar + gap each


def test_show_attention_overlays_a_stretched_heatmap_on_each_image():
    from imgcls_helpers.viz import show_attention

    images = torch.rand(3, 3, 32, 32)
    heat = torch.rand(3, 8, 8)
    fig = show_attention(images, heat, ["a", "b", "c"], ncols=2, title="rollout")
    axes = image_axes(fig)
    assert len(axes) == 3 and all(len(ax.images) == 2 for ax in axes)
    assert [ax.get_title() for ax in axes] == ["a", "b", "c"]
    top = axes[1].images[1]
    np.testing.assert_allclose(np.asarray(top.get_array()), heat[1].numpy(), rtol=1e-6)
    assert top.get_extent() == [-0.5, 31.5, 31.5, -0.5]  # covers the 32x32 image
    assert suptitle(fig) == "rollout"
    with pytest.raises(ValueError, match="heatmaps"):
        show_attention(images, heat[:2])


def test_markdown_table_rows_as_sequences_or_mappings_give_the_same_table():
    header = ["model", "accuracy", "images"]
    as_lists = markdown_table(header, [("cnn", 0.81234, 400), ("svm", np.float32(0.5), 12)])
    as_dicts = markdown_table(
        header,
        [
            {"images": 400, "model": "cnn", "accuracy": 0.81234, "unused": 1.0},
            {"model": "svm", "accuracy": np.float32(0.5), "images": 12},
        ],
    )
    assert as_lists == as_dicts
    assert as_lists.splitlines() == [
        "| model | accuracy | images |",
        "|---|---|---|",
        "| cnn | 0.812 | 400 |",
        "| svm | 0.500 | 12 |",
    ]


def test_markdown_table_digits_apply_to_floats_only_and_short_rows_are_refused():
    table = markdown_table(("x", "note"), [(1 / 3, "0.5 ± 0.1"), (2, True)], digits=1)
    assert table.splitlines()[2:] == ["| 0.3 | 0.5 ± 0.1 |", "| 2 | True |"]
    with pytest.raises(ValueError, match="1 cells for 2 columns"):
        markdown_table(["a", "b"], [[1.0]])
