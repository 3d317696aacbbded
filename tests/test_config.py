"""Tests for imgcls_helpers.config: profile, offline flag, data dir, device, seeding, banner."""

from __future__ import annotations

import os
import random
import re
import sys
import types
from datetime import datetime, timezone
from xml.etree import ElementTree

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


def test_smoke_is_offline_and_asking_changes_nothing(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("IMGCLS_OFFLINE", raising=False)
    before = dict(os.environ)
    assert config.is_offline() is True
    assert dict(os.environ) == before


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
    assert "HF_HUB_OFFLINE" not in os.environ


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


def test_describe_run_shows_the_utc_date_of_the_run(capsys):
    before = datetime.now(timezone.utc).date().isoformat()
    banner = config.describe_run()
    after = datetime.now(timezone.utc).date().isoformat()
    capsys.readouterr()
    dates = [line.split(":", 1)[1].strip() for line in banner.splitlines() if "date:" in line]
    assert len(dates) == 1 and dates[0] in {before, after}
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", dates[0])


# --------------------------------------------------------------------------- announce

# A message with what could go wrong: a hyphenated word, a long path, characters HTML
# must escape and quotes it need not.
MESSAGE = (
    "OFFLINE STAND-IN: 'cifar10' is not available (/a/very/long/path/"
    + "x" * 80
    + "). "
    + " ".join(f"word{i}" for i in range(30))
    + " so accuracy < 0.2 & chance > 0.1 is NOT A RESULT."
)
SEARCHED_WORDS = ["OFFLINE STAND-IN", "'cifar10' is not available", "NOT A RESULT"]


def fake_ipython(monkeypatch, shell) -> list:
    """Make ``IPython.get_ipython()`` return ``shell``; returns the list ``display`` fills."""
    shown: list = []
    ipython = types.ModuleType("IPython")
    ipython.get_ipython = lambda: shell
    display_module = types.ModuleType("IPython.display")
    display_module.display = shown.append
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "IPython.display", display_module)
    return shown


def rule_and_body(out: str) -> tuple[list[str], list[str]]:
    """The lines that are rules of '!' and the lines between them."""
    lines = out.splitlines()
    return [lines[0], lines[-1]], lines[1:-1]


def test_announce_in_a_terminal_prints_the_whole_message_as_plain_text(capsys, monkeypatch):
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    config.announce(MESSAGE)
    out = capsys.readouterr().out
    rules, body = rule_and_body(out)
    assert rules == ["!" * 78] * 2
    assert len(body) > 2  # the message is long enough to wrap
    assert " ".join(body) == MESSAGE  # no word split, none lost, nothing escaped
    assert all(len(line) <= 78 for line in body if "/" not in line)
    assert body[0].startswith("OFFLINE STAND-IN:")
    assert "<div" not in out and "&lt;" not in out and "admonition" not in out
    assert "IPython" not in sys.modules  # a plain interpreter never imports IPython


@pytest.mark.parametrize("shift", range(0, 78, 3))
def test_plain_notice_never_splits_a_word_wherever_it_falls(shift):
    message = "NOT RUN: " + "a" * shift + " the OFFLINE STAND-IN and RANDOM WEIGHTS re-run"
    body = config.Notice(message).plain().splitlines()[1:-1]
    assert " ".join(body) == message


def test_announce_in_terminal_ipython_prints_plain_text(capsys, monkeypatch):
    shown = fake_ipython(monkeypatch, types.SimpleNamespace())  # a shell without a kernel
    config.announce(MESSAGE)
    assert shown == []
    assert " ".join(rule_and_body(capsys.readouterr().out)[1]) == MESSAGE


def test_announce_in_a_kernel_displays_the_notice_and_prints_nothing(capsys, monkeypatch):
    shown = fake_ipython(monkeypatch, types.SimpleNamespace(kernel=object()))
    config.announce(MESSAGE)
    assert shown == [config.Notice(MESSAGE)]
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    ("message", "title"),
    [
        ("RANDOM WEIGHTS: the model is random", "RANDOM WEIGHTS"),
        ("NOT RUN: skipped", "NOT RUN"),
        ("OFFLINE STAND-IN BACKBONE: a small one", "OFFLINE STAND-IN BACKBONE"),
        ("CHANCE: 10%: about 0.1", "CHANCE"),
        ("no label here", "Warning"),
        ("Note: not an upper-case label", "Warning"),
    ],
)
def test_notice_title_is_the_upper_case_label(message, title):
    assert config.Notice(message).title == title


def test_notice_html_is_a_warning_admonition_with_title_and_escaped_message():
    html = config.Notice(MESSAGE).html()
    root = ElementTree.fromstring(html)  # well formed: every special character escaped
    assert root.tag == "div"
    assert {"admonition", "warning"} <= set(root.get("class").split())
    title, body = list(root)
    assert (title.tag, title.get("class"), title.text) == (
        "p",
        "admonition-title",
        "OFFLINE STAND-IN",
    )
    assert (body.tag, body.text) == ("p", MESSAGE)
    assert "&lt; 0.2 &amp; chance &gt; 0.1" in html
    for words in SEARCHED_WORDS:  # searched for in the HTML of executed notebooks
        assert words in html


def test_notice_mimebundle_carries_the_whole_message_in_both_forms():
    notice = config.Notice(MESSAGE)
    bundle = notice._repr_mimebundle_()
    assert bundle == {"text/plain": notice.plain(), "text/html": notice.html()}
    for words in SEARCHED_WORDS:
        assert words in bundle["text/plain"] and words in bundle["text/html"]


@pytest.mark.slow
def test_announce_in_a_real_kernel_outputs_html_and_plain_text():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    code = f"from imgcls_helpers import config\nconfig.announce({MESSAGE!r})"
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    nbclient.NotebookClient(notebook, timeout=60, kernel_name="python3").execute()
    outputs = notebook.cells[0].outputs
    assert [output.output_type for output in outputs] == ["display_data"]
    assert outputs[0].data["text/html"] == config.Notice(MESSAGE).html()
    assert outputs[0].data["text/plain"] == config.Notice(MESSAGE).plain()
