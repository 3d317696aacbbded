"""Tests for imgcls_helpers.checks: return values and what the student sees."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from imgcls_helpers import checks
from imgcls_helpers.checks import check_close, check_equal, check_shape, check_true

NOT_ATTEMPTED = [None, Ellipsis]


def run(capsys, check, *args, **kwargs):
    """Call a check; return (result, what it printed)."""
    result = check(*args, **kwargs)
    out = capsys.readouterr().out
    assert out.endswith("\n")
    return result, out.strip()


# ------------------------------------------------------------------------ not attempted


@pytest.mark.parametrize("answer", NOT_ATTEMPTED)
@pytest.mark.parametrize(
    ("check", "extra"),
    [
        (check_close, {"expected": 1.0}),
        (check_shape, {"expected": (2, 3)}),
        (check_equal, {"expected": "cat"}),
        (check_true, {"hint": "think again"}),
    ],
)
def test_none_means_not_yet(capsys, check, extra, answer):
    result, out = run(capsys, check, "Exercise 1", answer, **extra)
    assert result is False
    assert out.startswith("[NOT YET] Exercise 1:")
    assert "replace None" in out


# ------------------------------------------------------------------------ check_close


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (0.5, 0.5),
        (0.50001, 0.5),
        (3, 3.0),
        (torch.tensor([1.0, 2.0]), [1.0, 2.00005]),
        (np.array([[1, 2], [3, 4]]), torch.tensor([[1.0, 2.0], [3.0, 4.0]])),
        ([0.1, 0.2], (0.1, 0.2)),
        (np.float32(0.25), 0.25),
    ],
)
def test_check_close_passes(capsys, answer, expected):
    result, out = run(capsys, check_close, "ex 2.1", answer, expected)
    assert result is True
    assert out == "[PASS] ex 2.1"


@pytest.mark.parametrize(
    ("answer", "expected", "atol"),
    [
        (0.5002, 0.5, 1e-4),  # just outside the default tolerance
        (1000.01, 1000.0, 1e-4),  # the tolerance is absolute, not relative
        (0.6, 0.5, 0.05),
        ([1.0, 2.0], [1.0, 2.1], 1e-4),
        (float("nan"), 0.0, 1e-4),
    ],
)
def test_check_close_fails_outside_tolerance(capsys, answer, expected, atol):
    result, out = run(capsys, check_close, "ex 2.2", answer, expected, atol=atol)
    assert result is False
    assert out.startswith("[TRY AGAIN] ex 2.2: expected ")
    assert f"within {atol}" in out and repr(expected) in out


@pytest.mark.parametrize("atol", [0.1, 0.2])
def test_check_close_respects_atol(capsys, atol):
    result, _ = run(capsys, check_close, "ex", 0.65, 0.5, atol=atol)
    assert result is (abs(0.65 - 0.5) <= atol)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ([1.0, 1.0], 1.0),  # broadcasting would make these "close"
        ([[1.0, 2.0]], [1.0, 2.0]),
        (torch.zeros(2, 3), torch.zeros(3, 2)),
        ("0.5", 0.5),  # not a number at all
        ([1.0, [2.0]], [1.0, 2.0]),
    ],
)
def test_check_close_shape_mismatch_or_garbage_fails_without_traceback(capsys, answer, expected):
    result, out = run(capsys, check_close, "ex 2.3", answer, expected)
    assert result is False
    assert out.startswith("[TRY AGAIN] ex 2.3")


def test_check_close_custom_hint(capsys):
    result, out = run(capsys, check_close, "ex", 2.0, 1.0, hint="divide by the batch size")
    assert result is False
    assert out == "[TRY AGAIN] ex: divide by the batch size"


# ------------------------------------------------------------------------ check_shape


@pytest.mark.parametrize(
    ("value", "expected", "passed"),
    [
        (torch.zeros(2, 3, 4), (2, 3, 4), True),
        (torch.zeros(2, 3, 4), [2, 3, 4], True),
        (np.zeros((5,)), (5,), True),
        (torch.zeros(2, 3, 4), (2, 4, 3), False),
        (torch.zeros(2, 3), (2, 3, 1), False),
        ([[1, 2, 3]], (1, 3), False),  # a list has no shape
    ],
)
def test_check_shape(capsys, value, expected, passed):
    result, out = run(capsys, check_shape, "ex 3", value, expected)
    assert result is passed
    if passed:
        assert out == "[PASS] ex 3"
    else:
        assert out.startswith("[TRY AGAIN] ex 3: expected shape ")
        assert str(tuple(expected)) in out


# ------------------------------------------------------------------------ check_equal


@pytest.mark.parametrize(
    ("answer", "expected", "passed"),
    [
        ("cat", "cat", True),
        ("Cat", "cat", False),
        (3, 3, True),
        (4, 3, False),
        ([1, 2], [1, 2], True),
        ([2, 1], [1, 2], False),
        (("a", 1), ("a", 1), True),
        ({"x": 1}, {"x": 2}, False),
    ],
)
def test_check_equal(capsys, answer, expected, passed):
    result, out = run(capsys, check_equal, "ex 4", answer, expected)
    assert result is passed
    if passed:
        assert out == "[PASS] ex 4"
    else:
        assert out == f"[TRY AGAIN] ex 4: expected {expected!r}, got {answer!r}"


@pytest.mark.parametrize(
    ("answer", "expected", "passed"),
    [
        (torch.tensor([1, 2]), torch.tensor([1, 2]), True),
        (np.array([1, 2]), [1, 2], True),
        (torch.tensor([1, 2]), [1, 2], True),
        (np.array([1, 2]), [1, 2, 3], False),
        (np.int64(3), 3, True),
    ],
)
def test_check_equal_arrays_and_tensors_give_a_plain_bool(capsys, answer, expected, passed):
    """The module promises every check returns True or False and a wrong answer gets a hint,
    not a traceback; students naturally answer with tensors or arrays."""
    result = check_equal("ex 4b", answer, expected)
    out = capsys.readouterr().out
    assert result is passed
    assert out.startswith("[PASS]" if passed else "[TRY AGAIN]")


# ------------------------------------------------------------------------ check_true


@pytest.mark.parametrize(
    ("condition", "passed"),
    [
        (True, True),
        (False, False),
        (np.bool_(True), True),
        (torch.tensor(-1.0).item() < 0, True),
        (torch.tensor(False), False),
        (1, True),
        (0, False),
    ],
)
def test_check_true(capsys, condition, passed):
    result, out = run(capsys, check_true, "ex 5", condition, hint="the minimum must be negative")
    assert result is passed
    expected = "[PASS] ex 5" if passed else "[TRY AGAIN] ex 5: the minimum must be negative"
    assert out == expected


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_check_close_accepts_a_cuda_answer(capsys):
    result, out = run(
        capsys, check_close, "ex gpu", torch.tensor([1.0, 2.0], device="cuda"), [1, 2]
    )
    assert result is True and out == "[PASS] ex gpu"


def test_check_close_accepts_a_negative_stride_view(capsys):
    """``bgr[..., ::-1]`` is how students flip channels; torch cannot wrap such views."""
    bgr = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    result, out = run(capsys, check_close, "ex flip", bgr[..., ::-1], bgr[..., [2, 1, 0]])
    assert result is True and out == "[PASS] ex flip"


def test_a_claim_that_holds_is_silent(capsys, monkeypatch):
    monkeypatch.setenv("IMGCLS_PROFILE", "cpu")
    monkeypatch.delenv("CI", raising=False)
    assert checks.claim(True, "augmentation helps") is None
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(("profile", "ci"), [("smoke", None), ("cpu", "true")])
def test_a_false_claim_stops_the_runs_that_build_the_book(monkeypatch, profile, ci):
    monkeypatch.setenv("IMGCLS_PROFILE", profile)
    monkeypatch.delenv("IMGCLS_FAST_DEV_RUN", raising=False)
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(AssertionError, match="text says: augmentation helps"):
        checks.claim(False, "augmentation helps")


def test_a_false_claim_in_a_readers_own_run_is_announced_not_fatal(capsys, monkeypatch):
    monkeypatch.setenv("IMGCLS_PROFILE", "full")
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("IMGCLS_FAST_DEV_RUN", raising=False)
    checks.claim(False, "augmentation helps")
    out = capsys.readouterr().out
    assert "THE TEXT SAYS: augmentation helps" in out and "DISAGREE" in out


def test_a_fast_dev_run_does_not_check_claims(capsys, monkeypatch):
    monkeypatch.setenv("IMGCLS_PROFILE", "cpu")
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("IMGCLS_FAST_DEV_RUN", "1")
    checks.claim(False, "augmentation helps")
    assert "not checked in a fast dev run" in capsys.readouterr().out
