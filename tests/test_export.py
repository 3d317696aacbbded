"""Tests for imgcls_helpers.export: a small real CNN exported once, then checked against PyTorch."""

from __future__ import annotations

import copy
import json
import time

import pytest
import torch

from imgcls_helpers import export
from imgcls_helpers.export import (
    TOLERANCE,
    agreement,
    compiled,
    file_sha256,
    latency_ms,
    onnx_session,
    save_bundle,
)
from imgcls_helpers.models import SmallCNN

CLASSES = ["cat", "dog", "fox"]
SIZE = 32


def small_cnn(seed: int) -> SmallCNN:
    """A SmallCNN whose BatchNorm layers hold non-trivial running statistics."""
    torch.manual_seed(seed)
    model = SmallCNN(len(CLASSES), width=8)
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(8, 3, SIZE, SIZE) * 2 + 0.5)  # train mode: updates BN statistics
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The model stays in training mode on purpose: export must not depend on, or change, it."""
    model = small_cnn(seed=0)
    before = copy.deepcopy(model.state_dict())
    folder = save_bundle(
        tmp_path_factory.mktemp("bundle"),
        model,
        CLASSES,
        image_size=SIZE,
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
    )
    return model, folder, before


def test_bundle_is_two_files_and_json_describes_the_model(exported):
    _, folder, _ = exported
    assert sorted(p.name for p in folder.iterdir()) == ["model.json", "model.onnx"]
    meta = json.loads((folder / "model.json").read_text())
    assert meta["classes"] == CLASSES
    assert meta["image_size"] == SIZE and meta["resize"] == round(SIZE / 0.875)
    assert meta["mean"] == [0.5] * 3 and meta["std"] == [0.25] * 3
    assert meta["sha256"] == file_sha256(folder / "model.onnx")
    assert isinstance(meta["opset"], int) and meta["opset"] >= 17
    assert meta["torch_version"] == torch.__version__


def test_callers_model_keeps_mode_dtype_and_statistics(exported):
    model, _, before = exported
    assert all(m.training for m in model.modules())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert next(model.parameters()).dtype == torch.float32


def test_onnx_agrees_with_pytorch_in_eval_mode(exported):
    model, folder, _ = exported
    images = torch.randn(6, 3, SIZE, SIZE)
    result = agreement(model, onnx_session(folder), images)
    assert result["max_abs_diff_logits"] <= TOLERANCE
    assert result["max_abs_diff_probs"] <= TOLERANCE
    assert result["top1_agreement"] == 1.0
    assert model.training  # agreement evaluated in eval mode and put training mode back


def test_agreement_notices_a_different_model(exported):
    _, folder, _ = exported
    result = agreement(small_cnn(seed=1), onnx_session(folder), torch.randn(6, 3, SIZE, SIZE))
    assert result["max_abs_diff_logits"] > 100 * TOLERANCE


@pytest.mark.parametrize("batch", [1, 5])
def test_batch_dimension_is_dynamic(exported, batch):
    _, folder, _ = exported
    session = onnx_session(folder)
    (logits,) = session.run(None, {"image": torch.randn(batch, 3, SIZE, SIZE).numpy()})
    assert logits.shape == (batch, len(CLASSES))


def test_float64_model_is_exported_as_float32_and_left_float64(tmp_path):
    model = small_cnn(seed=0).double().eval()
    folder = save_bundle(tmp_path, model, CLASSES, image_size=SIZE, mean=(0,) * 3, std=(1,) * 3)
    assert next(model.parameters()).dtype == torch.float64
    result = agreement(model, onnx_session(folder), torch.randn(3, 3, SIZE, SIZE))
    assert result["max_abs_diff_logits"] <= TOLERANCE and result["top1_agreement"] == 1.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_gpu_model_stays_on_the_gpu(tmp_path):
    model = small_cnn(seed=0).cuda().eval()
    folder = save_bundle(tmp_path, model, CLASSES, image_size=SIZE, mean=(0,) * 3, std=(1,) * 3)
    assert next(model.parameters()).device.type == "cuda"
    result = agreement(model, onnx_session(folder), torch.randn(3, 3, SIZE, SIZE))
    assert result["top1_agreement"] == 1.0 and result["max_abs_diff_logits"] <= 1e-2  # TF32


def test_class_count_must_match_the_model(tmp_path):
    with pytest.raises(ValueError, match="3 outputs but 2 classes"):
        save_bundle(
            tmp_path, small_cnn(0), ["a", "b"], image_size=SIZE, mean=(0,) * 3, std=(1,) * 3
        )


def test_missing_onnx_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.onnx"):
        onnx_session(tmp_path)


def test_latency_counts_calls_and_takes_median_after_warmup(monkeypatch):
    """A fake clock: each call 'takes' a known time, so the statistics are exact."""
    durations = iter([0.5, 0.5, 0.001, 0.004, 0.002, 0.003, 0.050])  # 2 warm-up, then 5 runs
    clock = {"now": 0.0, "calls": 0}

    def run(batch):
        assert batch == "batch of 4"
        clock["calls"] += 1
        clock["now"] += next(durations)

    monkeypatch.setattr(time, "perf_counter", lambda: clock["now"])
    result = latency_ms(run, "batch of 4", runs=5, warmup=2)
    assert clock["calls"] == 7
    assert result["median_ms_per_batch"] == pytest.approx(3.0)
    assert result["median_ms_per_image"] == pytest.approx(3.0 / len("batch of 4"))
    assert result["p90_ms_per_batch"] == pytest.approx(4 + 0.6 * 46)
    assert result["runs"] == 5


def test_latency_of_a_real_model_is_positive(exported):
    model, _, _ = exported
    calls = []
    result = latency_ms(lambda b: calls.append(model(b)), torch.randn(2, 3, SIZE, SIZE), runs=3)
    assert len(calls) == 3 + 5
    assert result["median_ms_per_image"] > 0 and result["p90_ms_per_batch"] > 0


@pytest.mark.parametrize("runs, warmup", [(0, 5), (3, -1)])
def test_latency_rejects_bad_counts(runs, warmup):
    with pytest.raises(ValueError, match="runs"):
        latency_ms(lambda b: None, [1], runs=runs, warmup=warmup)


def test_compiled_model_matches_eager():
    """backend="aot_eager" runs torch.compile's graph capture without the C++ code generation
    (which takes about a minute on a small CPU), so the test stays fast."""
    model = small_cnn(seed=0).eval()
    example = torch.randn(4, 3, SIZE, SIZE)
    fn, reason = compiled(model, example, backend="aot_eager")
    assert reason == "ok" and fn is not None
    with torch.inference_mode():
        torch.testing.assert_close(fn(example), model(example), atol=1e-5, rtol=1e-5)


def test_compile_failure_at_compile_call_becomes_a_reason(monkeypatch):
    def broken_compile(model, **options):
        raise RuntimeError("no working C++ compiler\nlots of detail")

    monkeypatch.setattr(torch, "compile", broken_compile)
    fn, reason = compiled(small_cnn(0), torch.randn(1, 3, SIZE, SIZE))
    assert fn is None and reason == "RuntimeError: no working C++ compiler"


def test_compile_failure_at_first_call_reports_the_root_cause(monkeypatch):
    def fails_when_called(x):
        try:
            raise FileNotFoundError("g++ not found")
        except FileNotFoundError as err:
            raise RuntimeError("backend='inductor' raised:\n...") from err

    monkeypatch.setattr(torch, "compile", lambda model, **options: fails_when_called)
    fn, reason = compiled(small_cnn(0), torch.randn(1, 3, SIZE, SIZE))
    assert fn is None and reason == "FileNotFoundError: g++ not found"


def test_compiled_does_not_swallow_ctrl_c(monkeypatch):
    def interrupted(model, **options):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "compile", interrupted)
    with pytest.raises(KeyboardInterrupt):
        compiled(small_cnn(0), torch.randn(1, 3, SIZE, SIZE))


def test_cuda_home_notice_is_hidden_only_while_compiling():
    logger = export.logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    with export._no_cuda_home_notice():
        assert not logger.isEnabledFor(export.logging.WARNING)
    assert logger.level == level
