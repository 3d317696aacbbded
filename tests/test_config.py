"""Tests for imgcls_helpers.config: profile, offline flag, data dir, device, seeding, banner."""

from __future__ import annotations

import os
import random
import sys
import types

import numpy as np
import pytest
import torch
import torchvision

from imgcls_helpers import config


@pytest.fixture
def no_profile(monkeypatch):
    """Neither IMGCLS_PROFILE nor CI set, no CUDA and no MPS: a plain laptop."""
    monkeypatch.delenv("IMGCLS_PROFILE", raising=False)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    mps = getattr(torch.backends, "mps", None)
    if mps is not None:
        monkeypatch.setattr(mps, "is_available", lambda: False)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("smoke", "smoke"), ("cpu", "cpu"), ("full", "full"), ("CPU", "cpu"), (" Full ", "full")],
)
def test_profile_from_env_is_case_insensitive(monkeypatch, value, expected):
    monkeypatch.setenv("IMGCLS_PROFILE", value)
    assert config.get_profile() == expected


@pytest.mark.parametrize("value", ["gpu", "fast", "smok"])
def test_invalid_profile_names_the_allowed_ones(monkeypatch, value):
    monkeypatch.setenv("IMGCLS_PROFILE", value)
    with pytest.raises(ValueError, match=value) as err:
        config.get_profile()
    for allowed in ("smoke", "cpu", "full"):
        assert allowed in str(err.value)


@pytest.mark.parametrize("ci", ["true", "TRUE", "1", "yes"])
def test_ci_implies_smoke(monkeypatch, no_profile, ci):
    monkeypatch.setenv("CI", ci)
    assert config.get_profile() == "smoke"


@pytest.mark.parametrize("ci", ["false", "0", ""])
def test_ci_false_does_not_imply_smoke(monkeypatch, no_profile, ci):
    monkeypatch.setenv("CI", ci)
    assert config.get_profile() == "cpu"


def test_explicit_profile_wins_over_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("IMGCLS_PROFILE", "full")
    assert config.get_profile() == "full"


def test_default_profile_follows_hardware(monkeypatch, no_profile):
    assert config.get_profile() == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert config.get_profile() == "full"


@pytest.mark.parametrize("profile", ["smoke", "cpu", "full"])
def test_pick_returns_the_value_of_the_active_profile(monkeypatch, profile):
    monkeypatch.setenv("IMGCLS_PROFILE", profile)
    assert config.pick(smoke="s", cpu="c", full="f") == profile[0]


def test_smoke_is_offline_and_sets_hf_hub_offline(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("IMGCLS_OFFLINE", raising=False)
    assert config.is_offline() is True
    assert os.environ["HF_HUB_OFFLINE"] == "1"


@pytest.mark.parametrize(
    ("imgcls_offline", "expected"), [(None, False), ("0", False), ("1", True), ("true", True)]
)
def test_cpu_is_online_unless_imgcls_offline(monkeypatch, imgcls_offline, expected):
    monkeypatch.setenv("IMGCLS_PROFILE", "cpu")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    if imgcls_offline is None:
        monkeypatch.delenv("IMGCLS_OFFLINE", raising=False)
    else:
        monkeypatch.setenv("IMGCLS_OFFLINE", imgcls_offline)
    assert config.is_offline() is expected
    assert os.environ.get("HF_HUB_OFFLINE") == ("1" if expected else None)


def test_data_dir_honours_imgcls_data_and_creates_it(monkeypatch, tmp_path):
    target = tmp_path / "a" / "b"
    monkeypatch.setenv("IMGCLS_DATA", str(target))
    assert config.data_dir() == target
    assert target.is_dir()


def test_data_dir_default_is_under_home_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("IMGCLS_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    path = config.data_dir()
    assert path == tmp_path / ".cache" / "imgcls"
    assert path.is_dir()


@pytest.mark.parametrize(
    ("cuda", "mps", "expected"),
    [(False, False, "cpu"), (True, False, "cuda"), (False, True, "mps"), (True, True, "cuda")],
)
def test_get_device_order(monkeypatch, cuda, mps, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    fake_mps = types.SimpleNamespace(is_available=lambda: mps)
    monkeypatch.setattr(torch.backends, "mps", fake_mps, raising=False)
    assert config.get_device() == torch.device(expected)


@pytest.mark.parametrize("prefer", ["cpu", "cuda:1", "meta"])
def test_get_device_prefer_wins(monkeypatch, prefer):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert config.get_device(prefer) == torch.device(prefer)


def _draws():
    return (
        random.random(),
        np.random.rand(4),  # noqa: NPY002  (the legacy global RNG is what it seeds)
        torch.rand(4),
        torch.randint(0, 1000, (4,)),
    )


def test_seed_everything_repeats_all_generators():
    config.seed_everything(123)
    first = _draws()
    _draws()  # move every generator on before re-seeding
    config.seed_everything(123)
    second = _draws()
    assert first[0] == second[0]
    np.testing.assert_array_equal(first[1], second[1])
    assert torch.equal(first[2], second[2]) and torch.equal(first[3], second[3])

    config.seed_everything(124)
    other = _draws()
    assert other[0] != first[0]
    assert not np.array_equal(other[1], first[1])
    assert not torch.equal(other[2], first[2])


def test_describe_run_prints_and_returns_the_banner(capsys, no_profile, monkeypatch):
    monkeypatch.setenv("IMGCLS_PROFILE", "smoke")
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    banner = config.describe_run(dataset="CIFAR-10", weights="resnet18 IMAGENET1K_V1")
    printed = capsys.readouterr().out
    assert printed.strip() == banner.strip()
    rows = {
        line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip() for line in banner.splitlines()
    }
    assert rows["profile"].startswith("smoke")
    assert rows["device"] == "cpu"
    assert rows["offline"].startswith("yes")
    assert rows["dataset"] == "CIFAR-10"
    assert rows["weights"] == "resnet18 IMAGENET1K_V1"
    assert f"torch {torch.__version__}" in rows["versions"]
    assert f"torchvision {torchvision.__version__}" in rows["versions"]
    assert "Colab" not in banner


def test_describe_run_without_dataset_and_with_colab_note(capsys, no_profile, monkeypatch):
    monkeypatch.setenv("IMGCLS_PROFILE", "cpu")
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    banner = config.describe_run()
    capsys.readouterr()
    assert "dataset:" not in banner and "weights:" not in banner
    assert "profile: cpu" in banner
    assert "offline: no" in banner
    assert "Colab" in banner and "GPU" in banner


def test_announce_frames_the_whole_message(capsys):
    message = "OFFLINE STAND-IN: " + " ".join(f"word{i}" for i in range(40))
    config.announce(message)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == lines[-1] == "!" * 78
    assert len(lines) > 3  # the message is long enough to wrap
    body = lines[1:-1]
    assert all(len(line) == 78 and line[:2] == "! " and line[-2:] == " !" for line in body)
    assert " ".join(line[2:-2].strip() for line in body) == message
