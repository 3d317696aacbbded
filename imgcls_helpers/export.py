"""From notebook to product: export a trained model as a bundle, then check the bundle.

A ``state_dict`` is only useful next to the Python class that built the model. An ONNX file
holds the graph and the weights together, and onnxruntime runs it without PyTorch, from
Python, C#, Java or a phone. The graph alone is not enough, though: whoever uses it must also
know the class names and the exact preprocessing. :func:`save_bundle` therefore writes two
files into one folder, ``model.onnx`` and ``model.json`` (classes, image size, resize, mean,
std, and the SHA-256 of ``model.onnx`` so that a loader notices a replaced file).

Then three checks before shipping: :func:`agreement` (does ONNX compute what PyTorch
computed?), :func:`latency_ms` (how fast, per image?) and :func:`compiled` (``torch.compile``,
the other way to speed up inference, which needs a working C++ compiler on a CPU).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from .models import evaluating

# Largest |ONNX logit - PyTorch logit| accepted for a float32 model. Both compute in float32
# (about 7 significant digits) but add up in a different order, so results differ by about
# 1e-6 of the logits' size. Measured on a CPU: a small CNN 1e-8, ResNet-18 1.4e-6, ResNet-50
# (random weights, logits up to 83) 5e-5; trained models' logits are usually smaller. With
# logits beyond ~100, compare max_abs_diff_logits / max_abs_logit with 1e-6 instead. A real
# export bug (training mode, a dropped layer) moves logits by 1e-2 or more, far above this.
TOLERANCE = 1e-4


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file as hex, read in 1 MiB chunks (a ResNet-50 file is ~100 MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def save_bundle(
    folder: str | Path,
    model: nn.Module,
    classes: list[str],
    *,
    image_size: int,
    mean,
    std,
    resize: int | None = None,
) -> Path:
    """Write ``folder/model.onnx`` and ``folder/model.json``; return ``folder``.

    The export works on a float32 CPU copy of ``model`` in evaluation mode, so the caller's
    model keeps its mode, device, dtype and BatchNorm statistics. The batch dimension is
    dynamic (named ``batch``), so one file serves a single photo and a folder of them.
    ``resize`` is the short side before the centre crop, ``round(image_size / 0.875)`` by
    default, as in :func:`imgcls_helpers.data.eval_transforms`.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cpu_model = copy.deepcopy(model).to("cpu", torch.float32).eval()
    # Batch 2, not 1: torch.export treats a size-1 dimension as fixed.
    example = torch.zeros(2, 3, image_size, image_size)
    with torch.inference_mode():
        n_outputs = cpu_model(example).shape[-1]
    if n_outputs != len(classes):
        raise ValueError(f"the model has {n_outputs} outputs but {len(classes)} classes given")
    onnx_path = folder / "model.onnx"
    program = torch.onnx.export(
        cpu_model,
        (example,),
        onnx_path,
        dynamo=True,  # the torch.export-based exporter (needs onnxscript)
        external_data=False,  # one self-contained file; fine below protobuf's 2 GB limit
        verbose=False,  # else it prints a progress line per step into the notebook
        input_names=["image"],
        output_names=["logits"],
        dynamic_shapes=({0: torch.export.Dim("batch", min=1)},),
    )
    meta = {
        "classes": list(classes),
        "image_size": int(image_size),
        "resize": int(resize or round(image_size / 0.875)),
        "mean": [float(m) for m in mean],
        "std": [float(s) for s in std],
        "input": "image",
        "output": "logits",
        "opset": int(program.model.opset_imports[""]),
        "torch_version": torch.__version__,
        "sha256": file_sha256(onnx_path),
    }
    (folder / "model.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return folder


def onnx_session(bundle_folder: str | Path) -> ort.InferenceSession:
    """An onnxruntime session on ``bundle_folder/model.onnx``, on the CPU.

    Thread counts are left to onnxruntime (one per physical core), as a server would run it.
    """
    path = Path(bundle_folder) / "model.onnx"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (save_bundle writes it)")
    options = ort.SessionOptions()
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def agreement(model: nn.Module, session: ort.InferenceSession, images: torch.Tensor) -> dict:
    """Compare ``model`` (in evaluation mode, on its own device) with the ONNX ``session``.

    ``images`` is a normalised float batch ``(N, 3, H, W)``. Returns the largest absolute
    difference of the logits and of the softmax probabilities, the fraction of images whose
    top-1 class is the same, and the largest |logit| (differences scale with it). Compare
    ``max_abs_diff_logits`` with :data:`TOLERANCE`. A model on a GPU may differ more (TF32),
    one in float16 much more.
    """
    weight = next(model.parameters())
    with evaluating(model), torch.inference_mode():
        reference = model(images.to(weight.device, weight.dtype)).cpu().double().numpy()
    name = session.get_inputs()[0].name
    onnx_logits = session.run(None, {name: images.detach().cpu().float().numpy()})[0]
    onnx_logits = onnx_logits.astype(np.float64)
    return {
        "max_abs_diff_logits": float(np.abs(reference - onnx_logits).max()),
        "max_abs_diff_probs": float(np.abs(_softmax(reference) - _softmax(onnx_logits)).max()),
        "top1_agreement": float(np.mean(reference.argmax(1) == onnx_logits.argmax(1))),
        "max_abs_logit": float(np.abs(reference).max()),
    }


def latency_ms(
    run: Callable[[Any], Any], batch, *, runs: int = 30, warmup: int = 5
) -> dict[str, float]:
    """Time ``run(batch)``: ``warmup`` untimed calls, then the median of ``runs`` timed ones.

    Written by hand because it is short and teaches three habits: warm up first (the first
    calls allocate memory, and a compiled model compiles), report the median (robust to a
    call the operating system interrupted), and on a GPU wait for the work to finish
    (``torch.cuda.synchronize``), because CUDA calls return before the GPU is done. Calls run
    under ``torch.inference_mode()``, so PyTorch keeps no autograd records, as in serving.
    """
    if runs < 1 or warmup < 0:
        raise ValueError(f"need runs >= 1 and warmup >= 0, got runs={runs}, warmup={warmup}")
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    times = []
    with torch.inference_mode():
        for i in range(warmup + runs):
            start = time.perf_counter()
            run(batch)
            sync()
            if i >= warmup:
                times.append((time.perf_counter() - start) * 1000)
    per_batch = float(np.median(times))
    return {
        "median_ms_per_image": per_batch / len(batch),
        "median_ms_per_batch": per_batch,
        "p90_ms_per_batch": float(np.percentile(times, 90)),
        "runs": runs,
    }


@contextlib.contextmanager
def _no_cuda_home_notice() -> Iterator[None]:
    """Hide torch.utils.cpp_extension's log line "No CUDA runtime is found, using CUDA_HOME=..."

    Inductor imports that module while compiling; on a machine without a GPU the line is
    expected and harmless. Only this one logger is quieted, only while compiling.
    """
    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _one_line(err: BaseException) -> str:
    """The root cause of an exception chain as ``Type: first line of its message``."""
    while err.__cause__ is not None:
        err = err.__cause__
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    text = f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def compiled(model: nn.Module, example: torch.Tensor, **options) -> tuple[Callable | None, str]:
    """``torch.compile(model, **options)``, tried once on ``example``: ``(fn, "ok")``, or
    ``(None, reason)`` with a one-line reason when compiling fails on this machine.

    ``torch.compile`` compiles lazily, on the first call, and on a CPU that needs a working
    C++ compiler; that first call is slow (seconds to minutes), so time ``fn`` only after
    warm-up (:func:`latency_ms` does). The model runs in whatever mode it is in: call
    ``model.eval()`` first for inference. Compile failures are returned, not raised, so a
    notebook can go on with the eager model; Ctrl-C (``KeyboardInterrupt``) still stops it.
    """
    try:
        with _no_cuda_home_notice():
            fn = torch.compile(model, **options)
            with torch.inference_mode():
                fn(example)
    except Exception as err:  # noqa: BLE001  any compiler/backend failure; not KeyboardInterrupt
        return None, _one_line(err)
    return fn, "ok"
