"""The diagrams draw what they claim: the right boxes, in order, with the right labels."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from imgcls_helpers import diagrams  # noqa: E402


def box_labels(fig) -> list[str]:
    """The labels of a diagram's boxes, top to bottom, then left to right."""
    ax = fig.axes[0]
    texts = [t for t in ax.texts if t.get_fontsize() == 9]
    texts.sort(key=lambda t: (-round(t.get_position()[1], 2), t.get_position()[0]))
    return [t.get_text() for t in texts]


def test_box_and_arrow_draw_onto_the_axes():
    fig, ax = diagrams.canvas(3, 2)
    a = diagrams.box(ax, 1.5, 1.5, "conv 3x3")
    b = diagrams.box(ax, 1.5, 0.5, "ReLU", kind="act")
    diagrams.arrow(ax, a, b, text="x")
    assert box_labels(fig) == ["conv 3x3", "ReLU"]
    assert len(ax.patches) == 3


def shape_labels(fig) -> list[str]:
    """The small grey texts of a diagram (tensor shapes), left to right, top row first."""
    texts = [t for t in fig.axes[0].texts if t.get_fontsize() == 8 and t.get_va() == "top"]
    texts.sort(key=lambda t: (-round(t.get_position()[1], 2), t.get_position()[0]))
    return [t.get_text() for t in texts]


def test_two_conv_net_shows_every_layer_in_order_with_its_output_shape():
    fig = diagrams.two_conv_net(num_classes=8)
    assert box_labels(fig) == [
        "input image",
        "conv1: 6 filters\n5×5, ReLU",
        "max-pool 2×2",
        "conv2: 16 filters\n5×5, ReLU",
        "max-pool 2×2",
        "flatten",
        "fc1 + ReLU",
        "fc2 + ReLU",
        "fc3",
    ]
    assert shape_labels(fig) == [
        "3 × 32 × 32",
        "6 × 28 × 28",
        "6 × 14 × 14",
        "16 × 10 × 10",
        "16 × 5 × 5",
        "400",
        "120",
        "84",
        "8 logits",
    ]
    assert fig.get_size_inches()[0] <= 8


def test_two_conv_net_shapes_follow_the_image_size():
    # 28 x 28 grey images: 24, 12, 8, 4, so fc1 receives 16 * 4 * 4 = 256 inputs
    fig = diagrams.two_conv_net(num_classes=10, image_size=28, in_channels=1)
    assert shape_labels(fig)[:6] == [
        "1 × 28 × 28",
        "6 × 24 × 24",
        "6 × 12 × 12",
        "16 × 8 × 8",
        "16 × 4 × 4",
        "256",
    ]


def test_basic_block_identity_and_projection_shortcuts():
    same = box_labels(diagrams.basic_block(64, 64))
    assert same == [
        "x: 64 × H × W",
        "3×3 conv, 64→64",
        "BN, ReLU",
        "3×3 conv, 64→64",
        "BN",
        "+",
        "ReLU",
        "64 × H × W",
    ]
    fig = diagrams.basic_block(64, 128, stride=2)
    labels = box_labels(fig)
    assert "3×3 conv, 64→128, stride 2" in labels
    assert "1×1 conv, 64→128, stride 2\n+ BN (projection)" in labels
    assert labels[-1] == "128 × H/2 × W/2"
    texts = [t.get_text() for t in diagrams.basic_block(64, 64).axes[0].texts]
    assert "identity" in texts
    assert fig.get_size_inches()[0] <= 8


def test_bottleneck_block_reduces_then_expands_by_four():
    labels = box_labels(diagrams.bottleneck_block(256, 64))
    main = [label for label in labels if "conv" in label]
    assert main == ["1×1 conv, 256→64 (reduce)", "3×3 conv, 64→64", "1×1 conv, 64→256 (expand)"]
    assert labels[-1] == "256 × H × W"
    # the first block of a stage widens 64 -> 256 channels, so even at stride 1 it projects
    first = box_labels(diagrams.bottleneck_block(64, 64))
    assert "1×1 conv, 64→256\n+ BN (projection)" in first
    strided = box_labels(diagrams.bottleneck_block(256, 128, stride=2))
    assert "3×3 conv, 128→128, stride 2" in strided
    assert strided[-1] == "512 × H/2 × W/2"


def test_hog_layout_counts_cells_blocks_and_the_descriptor_length():
    from imgcls_helpers import features

    fig = diagrams.hog_layout()
    assert box_labels(fig) == [
        "cell: 8 × 8 pixels",
        "histogram: 9 orientation bins",
        "block: 2 × 2 cells × 9 bins = 36",
        "L2-Hys: normalise, clip at 0.2, normalise",
        f"3 × 3 block positions × 36 = {features.hog_length(32, 32)}",
    ]
    assert fig.get_size_inches()[0] <= 8
    # An image sets the size: 64 x 48 pixels are 8 x 6 cells, so 7 x 5 block positions.
    fig = diagrams.hog_layout(np.zeros((64, 48, 3)), bins=6)
    labels = box_labels(fig)
    assert labels[2] == "block: 2 × 2 cells × 6 bins = 24"
    assert labels[-1] == f"7 × 5 block positions × 24 = {features.hog_length(64, 48, 6)}"
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "64 × 48 pixels: 8 × 6 cells" in texts


def test_hog_layout_refuses_an_image_smaller_than_one_block():
    with pytest.raises(ValueError, match="fewer cells than one block"):
        diagrams.hog_layout(size=(8, 8))


def test_augmentation_pipeline_training_passes_every_hook_evaluation_only_normalises():
    fig = diagrams.augmentation_pipeline()
    hooks = ["image_transform", "pixel_augment", "normalise", "augment", "batch_transform", "model"]
    labels = [label.split("\n")[0] for label in box_labels(fig)]
    assert labels == hooks + ["normalise", "model"]
    assert fig.get_size_inches()[0] <= 8


def test_patch_embedding_shows_each_step_in_order_with_the_embedding_shapes():
    import torch

    from imgcls_helpers import vit

    fig = diagrams.patch_embedding(image_size=32, patch_size=4, dim=16)
    assert box_labels(fig) == [
        "image: 3 × 32 × 32",
        "cut into 4 × 4 patches: 8 × 8 = 64",
        "flatten each patch: 64 × 48",
        "linear map 48 → 16, shared: 64 × 16",
        "class token in front: 65 × 16",
        "class token: 1 × 16",
        "+ position embeddings: 65 × 16",
        "position table: 65 × 16",
        "encoder blocks",
    ]
    # The shapes drawn are the ones the helper's embedding produces.
    embed = vit.ViTEmbedding(image_size=32, patch_size=4, dim=16)
    images = torch.zeros(1, 3, 32, 32)
    assert tuple(embed.patchify(images).shape[1:]) == (64, 16)
    assert tuple(embed(images).shape[1:]) == (65, 16)
    assert tuple(embed.pos_embedding.shape[1:]) == (65, 16)
    assert fig.get_size_inches()[0] <= 8


def test_patch_embedding_for_vit_b16_and_a_patch_that_does_not_fit():
    labels = box_labels(diagrams.patch_embedding(image_size=224, patch_size=16, dim=768))
    assert "cut into 16 × 16 patches: 14 × 14 = 196" in labels
    assert "flatten each patch: 196 × 768" in labels
    assert "+ position embeddings: 197 × 768" in labels
    with pytest.raises(ValueError, match="does not divide"):
        diagrams.patch_embedding(image_size=32, patch_size=5)


def test_comparison_protocol_chooses_on_validation_and_scores_the_test_split_once():
    fig = diagrams.comparison_protocol(seeds=3, epochs=4)
    assert box_labels(fig) == [
        "training split",
        "train: 4 epochs\n(networks)",
        "choose the epoch\nor C",
        "score the test\nsplit once",
        "mean ± sd\nover 3 seeds",
        "validation split",
        "test split",
    ]
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "again for each of 3 seeds" in texts
    assert fig.get_size_inches()[0] <= 8


def test_transfer_strategies_shows_what_each_strategy_trains():
    from matplotlib.colors import to_hex
    from matplotlib.patches import FancyBboxPatch

    groups = ("stem", "layer1", "layer2", "layer3", "layer4", "fc")
    fig = diagrams.transfer_strategies(groups)
    # four rows (feature extraction, fine-tuning phases 1 and 2, from scratch), input -> head
    assert box_labels(fig) == list(groups) * 4
    boxes = [p for p in fig.axes[0].patches if isinstance(p, FancyBboxPatch)]
    colours = [to_hex(p.get_facecolor()) for p in boxes]
    frozen, pretrained, random = (diagrams.COLOURS[k] for k in ("data", "norm", "act"))
    head_only = [frozen] * 5 + [random]
    assert colours == head_only + head_only + [pretrained] * 6 + [random] * 6
    assert fig.get_size_inches()[0] <= 8
    # any number of groups, e.g. this book's small ResNet
    small = ("stem", "stages.0", "stages.1", "stages.2", "head")
    assert box_labels(diagrams.transfer_strategies(small)) == list(small) * 4
