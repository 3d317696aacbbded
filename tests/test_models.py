"""Tests for imgcls_helpers.models: SmallCNN, count_parameters, pretrained_or_random offline."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from notices import notice_text

from imgcls_helpers.models import SmallCNN, count_parameters
from imgcls_helpers.transfer import LoadedModel, pretrained_or_random


@pytest.mark.parametrize(
    ("in_channels", "size", "num_classes"), [(3, 32, 10), (3, 64, 8), (1, 32, 4), (1, 20, 2)]
)
def test_small_cnn_output_shape(in_channels, size, num_classes):
    model = SmallCNN(num_classes, in_channels=in_channels, width=8)
    out = model(torch.randn(2, in_channels, size, size))
    assert out.shape == (2, num_classes)
    assert torch.isfinite(out).all()


def test_small_cnn_rejects_wrong_channels():
    with pytest.raises(RuntimeError):
        SmallCNN(10, in_channels=1, width=8)(torch.randn(1, 3, 32, 32))


def small_cnn_parameters(num_classes: int, in_channels: int, width: int) -> int:
    """From the architecture: 4 bias-free 3x3 convs each followed by BatchNorm (weight and
    bias per channel), then a linear layer from 2 * width features."""
    convs = [(in_channels, width), (width, width), (width, 2 * width), (2 * width, 2 * width)]
    conv_bn = sum(9 * cin * cout + 2 * cout for cin, cout in convs)
    return conv_bn + 2 * width * num_classes + num_classes


@pytest.mark.parametrize(("num_classes", "in_channels", "width"), [(10, 3, 32), (4, 1, 8)])
def test_count_parameters_matches_hand_count(num_classes, in_channels, width):
    model = SmallCNN(num_classes, in_channels=in_channels, width=width)
    expected = small_cnn_parameters(num_classes, in_channels, width)
    assert count_parameters(model) == expected
    assert count_parameters(model, trainable_only=True) == expected


def test_count_parameters_trainable_only_after_freezing():
    model = SmallCNN(10, width=16)
    for p in model.features.parameters():
        p.requires_grad_(False)
    head = 2 * 16 * 10 + 10
    assert count_parameters(model, trainable_only=True) == head
    assert count_parameters(model) == small_cnn_parameters(10, 3, 16)


def test_count_parameters_of_a_linear_layer():
    assert count_parameters(torch.nn.Linear(7, 5)) == 7 * 5 + 5
    assert count_parameters(torch.nn.Linear(7, 5, bias=False), trainable_only=True) == 35


@pytest.fixture
def torch_home(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert Path(torch.hub.get_dir()) == tmp_path / "hub"
    return tmp_path


def cache_path(torch_home: Path, weights) -> Path:
    return torch_home / "hub" / "checkpoints" / Path(weights.url).name


def test_resnet18_offline_without_cache_gives_loud_random_weights(capsys, torch_home):
    loaded = pretrained_or_random("resnet18")
    out = notice_text(capsys.readouterr().out)
    assert isinstance(loaded, LoadedModel)
    assert loaded.pretrained is False
    assert loaded.weights is torchvision.models.ResNet18_Weights.DEFAULT
    assert out.startswith("RANDOMWEIGHTS")
    assert "".join(str(cache_path(torch_home, loaded.weights)).split()) in out
    assert "RANDOM" in loaded.note
    assert len(loaded.categories) == 1000
    assert loaded.categories[0] == "tench"
    assert isinstance(loaded.model, torchvision.models.ResNet)
    assert loaded.model.fc.out_features == 1000
    assert not cache_path(torch_home, loaded.weights).exists()


def test_resnet18_named_weights(capsys, torch_home):
    loaded = pretrained_or_random("resnet18", weights="IMAGENET1K_V1")
    capsys.readouterr()
    assert loaded.weights is torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    assert loaded.pretrained is False


def test_resnet18_offline_loads_cached_weights(capsys, torch_home):
    weights = torchvision.models.ResNet18_Weights.DEFAULT
    torch.manual_seed(0)
    saved = torchvision.models.resnet18(weights=None).state_dict()
    path = cache_path(torch_home, weights)
    path.parent.mkdir(parents=True)
    torch.save(saved, path)

    loaded = pretrained_or_random("resnet18")
    assert "RANDOM WEIGHTS" not in capsys.readouterr().out
    assert loaded.pretrained is True
    assert "RANDOM" not in loaded.note
    state = loaded.model.state_dict()
    for key in ("conv1.weight", "layer3.0.bn1.running_var", "fc.bias"):
        assert torch.equal(state[key], saved[key]), key


def test_resnet18_corrupt_cache_falls_back_loudly(capsys, torch_home):
    weights = torchvision.models.ResNet18_Weights.DEFAULT
    path = cache_path(torch_home, weights)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    loaded = pretrained_or_random("resnet18")
    out = notice_text(capsys.readouterr().out)
    assert loaded.pretrained is False
    assert out.startswith("RANDOMWEIGHTS") and "loadingthemfailed" in out


def test_unknown_model_or_weights():
    with pytest.raises(ValueError):
        pretrained_or_random("resnet19")
    with pytest.raises(KeyError):
        pretrained_or_random("resnet18", weights="IMAGENET9K")


def test_two_conv_net_shapes_follow_the_convolution_formula():
    from imgcls_helpers.models import TwoConvNet, layer_shapes

    def out(size: int, kernel: int, stride: int = 1) -> int:
        return (size - kernel) // stride + 1

    after_conv1 = out(32, 5)
    after_pool1 = out(after_conv1, 2, 2)
    after_conv2 = out(after_pool1, 5)
    after_pool2 = out(after_conv2, 2, 2)
    model = TwoConvNet(7).train()
    rows = layer_shapes(model, (2, 3, 32, 32))
    assert [r[0] for r in rows] == ["conv1", "pool", "conv2", "pool", "fc1", "fc2", "fc3"]
    assert rows[0][2] == (2, 6, after_conv1, after_conv1)
    assert rows[3][2] == (2, 16, after_pool2, after_pool2)
    assert model.fc1.in_features == 16 * after_pool2 * after_pool2
    assert rows[-1] == ("fc3", "Linear", (2, 7))
    assert model.training, "layer_shapes puts the training mode back"
    assert not any(m._forward_hooks for m in model.modules()), "hooks are removed"


def test_layer_shapes_removes_its_hooks_even_when_the_forward_fails():
    from imgcls_helpers.models import TwoConvNet, layer_shapes

    model = TwoConvNet(3)
    with pytest.raises(RuntimeError):
        layer_shapes(model, (1, 3, 64, 64))  # 64x64 gives 16*13*13 features, not 400
    assert not any(m._forward_hooks for m in model.modules())
