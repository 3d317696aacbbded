"""Tests for imgcls_helpers.explain: top losses, confused pairs, Grad-CAM checked against a hand
computation, the figures, and confident learning on labels we flipped ourselves."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from torch import nn  # noqa: E402

from imgcls_helpers.explain import (  # noqa: E402
    confused_pairs,
    grad_cam,
    label_issues,
    out_of_sample_probs,
    show_cams,
    show_top_losses,
    top_losses,
)

CLASSES = ["cat", "dog", "fox"]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# --- top_losses and confused_pairs ------------------------------------------------------------


def test_top_losses_by_hand_with_ties_in_dataset_order():
    logits = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 0.0], [0.0, 3.0], [0.0, 0.0]])
    targets = torch.tensor([0, 0, 1, 0, 0])
    # cross-entropy: log 2 for the undecided rows; log(1 + e^-3) and log(1 + e^3) for the others
    indices, losses = top_losses(logits, targets, k=3)
    assert indices.tolist() == [3, 0, 2]  # 0, 2 and 4 tie: the first ones in the dataset win
    np.testing.assert_allclose(losses, [math.log1p(math.exp(3)), math.log(2), math.log(2)], 1e-6)
    everything, _ = top_losses(logits, targets, k=10)
    assert everything.tolist() == [3, 0, 2, 4, 1]


def test_confused_pairs_counts_off_diagonal_most_frequent_first_ties_in_class_order():
    targets = [0, 0, 0, 1, 1, 2, 2, 2, 2, 1]
    preds = [1, 1, 2, 0, 0, 0, 2, 1, 1, 1]  # fox->fox and dog->dog are right: not pairs
    pairs = confused_pairs(targets, preds, [*CLASSES, "owl"], k=4)  # owl never occurs
    assert pairs == [("cat", "dog", 2), ("dog", "cat", 2), ("fox", "dog", 2), ("cat", "fox", 1)]
    assert confused_pairs(targets, preds, CLASSES, k=10)[-1] == ("fox", "cat", 1)
    assert len(confused_pairs(targets, preds, CLASSES, k=10)) == 5
    assert confused_pairs([0, 1, 2], [0, 1, 2], CLASSES) == []


# --- Grad-CAM ---------------------------------------------------------------------------------


def tiny_model() -> nn.Sequential:
    """conv -> ReLU -> global average pool -> linear, with fixed weights. Class 2's weights are
    all negative, so no pixel is evidence for it; class 3's are all positive."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 4),
    )
    weights = [[1, -2, 0.5, 1.5], [-1, 2, 1, -0.5], [-1, -1, -2, -0.3], [1, 0.5, 2, 1]]
    with torch.no_grad():
        model[0].bias.fill_(1.0)  # most activations positive, as in a trained network
        model[4].weight.copy_(torch.tensor(weights))
    return model


def hand_grad_cam(model: nn.Sequential, images: torch.Tensor, targets) -> torch.Tensor:
    """Grad-CAM on the ReLU's output A by hand: the score of class c is
    sum_k W[c, k] * mean(A_k), so d score / d A_k(i, j) = W[c, k] / (H * W) at every pixel and
    the channel weight (the mean of that gradient) is alpha_k = W[c, k] / (H * W)."""
    with torch.no_grad():
        activations = model[1](model[0](images))  # (N, 4, H, W), after the ReLU
        height, width = activations.shape[-2:]
        alpha = model[4].weight[targets] / (height * width)  # (N, 4)
        cams = torch.relu(torch.einsum("nk,nkhw->nhw", alpha, activations))
    peak = cams.amax(dim=(1, 2), keepdim=True)
    return torch.where(peak > 0, cams / peak, 0.0)


def test_grad_cam_matches_the_hand_computation_on_the_relu_layer():
    model = tiny_model()
    images = torch.randn(3, 3, 7, 9, generator=torch.Generator().manual_seed(1))
    for target in ([0, 0, 0], [1, 0, 1], [3, 3, 3]):
        cams = grad_cam(model, model[1], images, targets=target)  # hook: the ReLU's output
        expected = hand_grad_cam(model, images, torch.tensor(target))
        assert cams.shape == (3, 7, 9)
        np.testing.assert_allclose(cams.numpy(), expected.numpy(), atol=1e-5)
        assert cams.amax(dim=(1, 2)).tolist() == pytest.approx([1.0, 1.0, 1.0])
    # mixed weights: the ReLU has work to do; all positive: the weakest pixel is not 0, since
    # the map is divided by its maximum (0 means no evidence), not stretched to fill [0, 1]
    assert (hand_grad_cam(model, images, torch.tensor([0, 1, 0])) == 0).any()
    assert hand_grad_cam(model, images, torch.tensor([3, 3, 3])).amin() > 0.1


def test_grad_cam_with_no_evidence_for_the_class_is_all_zero_not_nan():
    model = tiny_model()
    cams = grad_cam(model, model[1], torch.randn(2, 3, 6, 6), targets=[2, 2])
    assert not cams.isnan().any()
    assert (cams == 0).all()


def test_grad_cam_targets_default_to_the_models_predictions_and_are_honoured():
    model = tiny_model()
    images = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    predicted = model(images).argmax(dim=1)
    by_default = grad_cam(model, model[1], images)
    torch.testing.assert_close(by_default, grad_cam(model, model[1], images, predicted))
    other = (predicted + 1) % 2  # classes 0 and 1 weigh the channels differently
    assert (by_default - grad_cam(model, model[1], images, other)).abs().amax() > 0.1


def small_resnet() -> nn.Module:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=3)
    for p in model.parameters():  # the chapter's transfer learning: a frozen backbone
        p.requires_grad_(False)
    model.fc.requires_grad_(True)
    return model


def test_grad_cam_on_a_resnet_keeps_mode_flags_grads_and_batchnorm_statistics():
    model = small_resnet().train()
    flags = [p.requires_grad for p in model.parameters()]
    model.fc.weight.grad = torch.ones_like(model.fc.weight)  # accumulated mid-training
    running_mean = model.bn1.running_mean.clone()
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))

    cams = grad_cam(model, model.layer4, images)

    assert cams.shape == (2, 64, 64)  # layer4 is 2x2 here; upsampled to the image
    assert cams.min() >= 0 and cams.max() <= 1
    assert model.training
    assert [p.requires_grad for p in model.parameters()] == flags
    assert torch.equal(model.fc.weight.grad, torch.ones_like(model.fc.weight))
    assert all(p.grad is None for name, p in model.named_parameters() if name != "fc.weight")
    torch.testing.assert_close(model.bn1.running_mean, running_mean)  # ran in eval mode


def test_grad_cam_works_on_a_fully_frozen_model():
    model = small_resnet().eval()
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    trainable = grad_cam(model, model.layer4, images, targets=[0, 1])
    model.fc.requires_grad_(False)
    frozen = grad_cam(model, model.layer4, images, targets=[0, 1])
    torch.testing.assert_close(frozen, trainable)
    assert not any(p.requires_grad for p in model.parameters())


def test_grad_cam_says_what_is_wrong_with_its_input():
    model = tiny_model()
    with pytest.raises(ValueError, match="not a module of `model`"):
        grad_cam(model, nn.ReLU(), torch.randn(1, 3, 5, 5))
    with pytest.raises(ValueError, match="normalised float batch"):
        grad_cam(model, model[1], torch.zeros(1, 3, 5, 5, dtype=torch.uint8))
    with pytest.raises(ValueError, match="2 images need as many targets"):
        grad_cam(model, model[1], torch.randn(2, 3, 5, 5), targets=[0, 1, 0])
    with pytest.raises(ValueError, match=r"class indices in \[0, 4\); got \[0, 4\]"):
        grad_cam(model, model[1], torch.randn(2, 3, 5, 5), targets=[0, 4])


# --- Figures ----------------------------------------------------------------------------------


def test_show_cams_draws_each_image_with_its_map_and_title():
    images = torch.randint(0, 256, (5, 3, 8, 8), dtype=torch.uint8)
    cams = torch.rand(5, 8, 8)
    titles = [f"true: cat / pred: dog 0.{i}1" for i in range(5)]
    fig = show_cams(images, cams, titles, ncols=4)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 8  # 2 rows of 4
    drawn = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in drawn] == titles
    for ax, cam in zip(drawn, cams, strict=True):
        assert len(ax.images) == 2  # the photo, and the map over it
        np.testing.assert_allclose(np.asarray(ax.images[1].get_array()), cam.numpy())
    with pytest.raises(ValueError, match="one \\(H, W\\) map and one title per image"):
        show_cams(images, cams[:4], titles)


def test_show_top_losses_titles_name_prediction_truth_loss_and_probability():
    images = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8)
    logits = torch.tensor([[2.0, 0, 0], [0, 2, 0], [3, 0, 0], [0, 0, 1], [0, 1, 0], [1, 1, 1]])
    targets = torch.tensor([0, 1, 2, 2, 0, 1])
    indices, losses = top_losses(logits, targets, k=3)
    probs = logits.softmax(dim=1)
    fig = show_top_losses(
        images, indices, losses, targets, logits.argmax(1), probs, CLASSES, ncols=2
    )
    assert len(fig.axes) == 4
    titles = [ax.get_title() for ax in fig.axes if ax.images]
    assert titles[0] == f"cat / fox / {losses[0]:.2f} / {probs[2, 2]:.2f}"  # image 2 is worst
    assert titles[1] == f"dog / cat / {losses[1]:.2f} / {probs[4, 0]:.2f}"
    assert len(titles) == 3
    assert fig.get_suptitle() == "pred / true / loss / prob of true"


# --- Confident learning -----------------------------------------------------------------------


def confident_probs(true_labels: np.ndarray, n_classes: int, rng, low=0.75) -> np.ndarray:
    """Probabilities of a model that is sure of the true class (``low`` to 0.99)."""
    probs = rng.dirichlet(np.ones(n_classes - 1), size=len(true_labels))
    top = rng.uniform(low, 0.99, size=len(true_labels))
    out = np.empty((len(true_labels), n_classes))
    for n, label in enumerate(true_labels):
        out[n] = np.insert(probs[n] * (1 - top[n]), label, top[n])
    return out


def test_label_issues_finds_the_flipped_labels_first():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 4, size=200)
    probs = confident_probs(truth, 4, rng)
    labels = truth.copy()
    flipped = rng.choice(200, size=10, replace=False)
    labels[flipped] = (truth[flipped] + rng.integers(1, 4, size=10)) % 4
    # The model is sure of these images' true class, surer than it usually is of that class
    # (its threshold): what confident learning needs to call the given label wrong.
    probs[flipped] = confident_probs(truth[flipped], 4, rng, low=0.9)
    issues = label_issues(probs, labels)
    assert len(issues) >= 9
    assert np.isin(issues[:10], flipped).mean() >= 0.9


def test_label_issues_finds_nothing_when_the_labels_are_right():
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 4, size=200)
    issues = label_issues(confident_probs(truth, 4, rng), truth)
    assert isinstance(issues, np.ndarray) and len(issues) == 0


def test_label_issues_thresholds_are_per_class_over_the_examples_labelled_with_it():
    # The model is less sure of dogs (0.45) than of cats and foxes (0.9), and leans towards cat
    # on them. Each class's threshold is the model's usual confidence on it, so those dogs
    # are dogs. A threshold over all examples (or the plain argmax) would call them all cats.
    cat, dog, fox = [0.9, 0.05, 0.05], [0.5, 0.45, 0.05], [0.05, 0.05, 0.9]
    probs = np.array([cat] * 40 + [dog] * 40 + [fox] * 40 + [[0.95, 0.03, 0.02]])
    labels = np.array([0] * 40 + [1] * 40 + [2] * 40 + [1])  # the last "dog" is clearly a cat
    assert label_issues(probs, labels).tolist() == [120]


def test_label_issues_ranks_suspects_by_self_confidence_lowest_first():
    probs = np.array(
        [[0.9, 0.1]] * 5 + [[0.1, 0.9]] * 5 + [[0.2, 0.8], [0.05, 0.95], [0.8, 0.2], [0.1, 0.9]]
    )
    labels = np.array([0] * 5 + [1] * 5 + [0, 0, 1, 1])  # 10 to 12 are wrong; 13 is right
    # self-confidence of the suspects: 10 -> 0.2, 11 -> 0.05, 12 -> 0.2 (a tie: index order)
    assert label_issues(probs, labels).tolist() == [11, 10, 12]


def test_label_issues_rejects_a_class_without_labels():
    with pytest.raises(ValueError, match=r"classes \[2\] have no labelled example"):
        label_issues(np.full((4, 3), 1 / 3), [0, 1, 0, 1])


# --- Out-of-sample probabilities --------------------------------------------------------------


@pytest.mark.filterwarnings("error")
def test_out_of_sample_probs_do_not_remember_random_labels_and_warn_nothing():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(150, 200))  # more dimensions than examples: memorisable
    labels = rng.integers(0, 3, size=150)
    probs = out_of_sample_probs(features, labels)
    assert probs.shape == (150, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    held_out = probs[np.arange(150), labels].mean()
    in_sample = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    seen = in_sample.fit(features, labels).predict_proba(features)[np.arange(150), labels].mean()
    assert seen > 0.9  # a model that saw the labels remembers them...
    assert held_out < 0.45  # ...held out, the true label gets about chance (1/3)


def test_out_of_sample_probs_columns_follow_the_labels():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(3), 20)
    features = rng.normal(size=(60, 5)) + 4 * np.eye(3, 5)[labels]  # well-separated classes
    probs = out_of_sample_probs(features, labels)
    assert (probs.argmax(axis=1) == labels).mean() > 0.95


@pytest.mark.filterwarnings("error")  # scikit-learn warns of a class smaller than the folds
def test_out_of_sample_probs_with_a_small_class_uses_fewer_folds_and_says_so(capsys):
    rng = np.random.default_rng(2)
    labels = np.array([0] * 20 + [1] * 20 + [2] * 3)
    probs = out_of_sample_probs(rng.normal(size=(43, 4)), labels, folds=5, seed=1)
    assert probs.shape == (43, 3)
    assert "using 3 folds instead" in capsys.readouterr().out
    with pytest.raises(ValueError, match=r"classes \{2: 1\}"):
        out_of_sample_probs(rng.normal(size=(41, 4)), np.array([0] * 20 + [1] * 20 + [2]))


@pytest.mark.filterwarnings("error")
def test_out_of_sample_probs_reports_non_convergence_instead_of_warning(monkeypatch, capsys):
    import sklearn.linear_model

    def one_step(**kwargs):
        return LogisticRegression(**{**kwargs, "max_iter": 1})

    monkeypatch.setattr(sklearn.linear_model, "LogisticRegression", one_step)
    rng = np.random.default_rng(3)
    probs = out_of_sample_probs(rng.normal(size=(60, 10)), np.repeat(np.arange(3), 20))
    assert probs.shape == (60, 3)
    assert "stopped before converging" in capsys.readouterr().out
