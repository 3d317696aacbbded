"""Chapter 12, scaling out with torchrun: the judges of its exercises."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..data import TensorLoader
from ..labs import Exercise, as_array, close, is_integer, one_thread
from ..models import TwoConvNet
from ..train import fit

GIB = 2**30
TOLERANCE = 1e-9  # the chapter's runs compute in float64: their weights agree far closer
BYTES_PER_PARAMETER = 4 + 4 + 8  # fp32 weights, fp32 gradients, AdamW's two fp32 moments


def _shard_indices(n: int, world: int, rank: int, *, pad: bool, shuffle: bool, seed: int = 0):
    """The image indices process ``rank`` of ``world`` sees in the first epoch, read from the
    helpers' own :meth:`TensorLoader.shard` (the labels are the indices)."""
    loader = TensorLoader(
        torch.zeros(n, 1, 1, 1, dtype=torch.uint8),
        torch.arange(n),
        batch_size=n,
        shuffle=shuffle,
        device="cpu",
        seed=seed,
    ).shard(rank, world, pad=pad)
    return [int(i) for _, labels in loader for i in labels]


def _as_int(value) -> int | None:
    return int(value) if is_integer(value) and not isinstance(value, bool) else None


# ----------------------------------------------- 12.1 global batch, steps and learning rate


def _batch_arithmetic(context, global_batch, steps_per_epoch, scaled_lr):
    n, world = context["images_ex1"], context["processes_ex1"]
    batch, base_lr = context["batch_ex1"], context["base_lr_ex1"]
    shard = TensorLoader(
        torch.zeros(n, 1, 1, 1, dtype=torch.uint8), torch.zeros(n), batch_size=batch, device="cpu"
    ).shard(0, world, pad=True)
    want_global, want_steps = world * batch, len(shard)
    want_lr = base_lr * want_global / 256
    got_global, got_steps = _as_int(global_batch), _as_int(steps_per_epoch)
    if got_global is None or got_steps is None:
        return "global_batch and steps_per_epoch are whole numbers"
    if got_global != want_global:
        if got_global == batch:
            return "global_batch: the batch size is per process, and every process takes one"
        return "global_batch: how many images go into one optimiser step, over all processes"
    if got_steps != want_steps:
        if got_steps == math.ceil(n / batch):
            return "steps_per_epoch: each process sees only its share of the images"
        if got_steps == n // want_global:
            return "steps_per_epoch: the last, smaller batch is a step too (drop_last is off)"
        return "steps_per_epoch: the images one process sees, divided into its batches"
    try:
        lr = float(as_array(scaled_lr).reshape(()))
    except (TypeError, ValueError):
        return "scaled_lr: one number"
    if close(lr, want_lr, atol=1e-6):
        return None
    if close(lr, base_lr, atol=1e-6):
        return "scaled_lr: the global batch changed, so the learning rate should too"
    if close(lr, base_lr * world, atol=1e-6):
        return "scaled_lr: scale by the global batch over the batch base_lr_ex1 was tuned for"
    return "scaled_lr: the linear scaling rule, lr = base_lr x global batch / 256"


# ----------------------------------------------------- 12.2 which images does each rank get?


def _as_shards(value, world: int) -> list[list[int]] | None:
    """``value`` as ``world`` lists of whole numbers, or None."""
    if isinstance(value, torch.Tensor | np.ndarray) and value.ndim == 2:
        value = list(value)  # one row per process
    if not isinstance(value, list | tuple) or len(value) != world:
        return None
    shards = []
    for part in value:
        try:
            array = as_array(part)
        except TypeError:
            return None
        if array.ndim != 1 or not np.all(array == np.round(array)):
            return None
        shards.append([int(i) for i in array])
    return shards


def _shards(context, train_shards, eval_shards):
    n, world = context["images_ex2"], context["processes_ex2"]
    train, evaluation = _as_shards(train_shards, world), _as_shards(eval_shards, world)
    if train is None or evaluation is None:
        return f"give one list of image indices per process: {world} lists each"
    want_train = [_shard_indices(n, world, r, pad=True, shuffle=True) for r in range(world)]
    want_eval = [_shard_indices(n, world, r, pad=False, shuffle=False) for r in range(world)]
    order = _shard_indices(n, 1, 0, pad=True, shuffle=True)
    size = -(-n // world)
    blocks = [(order * 2)[r * size : (r + 1) * size] for r in range(world)]
    if train != want_train:
        if train == [order[r::world] for r in range(world)]:
            return (
                "train_shards: training pads, so that every process gets the same number of "
                "images (DDP needs the same number of steps everywhere)"
            )
        if train == blocks:
            return "train_shards: a process keeps every world-th image, not a contiguous block"
        if train == [(list(range(n)) * 2)[r : size * world : world] for r in range(world)]:
            return "train_shards: the training loader shuffles: shard order_ex2, not 0, 1, 2, ..."
        return "train_shards: rank r keeps positions r, r + world, ... of the shuffled order"
    if evaluation != want_eval:
        if evaluation == [(list(range(n)) * 2)[r : size * world : world] for r in range(world)]:
            return "eval_shards: evaluation does not pad: no image may be counted twice"
        return "eval_shards: the evaluation loader keeps its order 0, 1, 2, ... and is not padded"
    return None


# ---------------------------------------------------------------- 12.3 memory per GPU


def _memory(context, ddp_gib, fsdp_gib, min_gpus):
    params, gpus = context["params_ex3"], context["gpus_ex3"]
    gpu_gib = context["gpu_gib_ex3"]
    full = params * BYTES_PER_PARAMETER / GIB
    try:
        ddp, fsdp = (float(as_array(v).reshape(())) for v in (ddp_gib, fsdp_gib))
    except (TypeError, ValueError):
        return "ddp_gib and fsdp_gib: one number each, in GiB"
    atol = 0.01 * full / gpus  # 1% of the sharded answer
    for value in (ddp, fsdp):
        if close(value, full * GIB / 1e9, atol=atol) or close(value, full / gpus * GIB / 1e9, atol):
            return "a GiB is 2**30 bytes, not 10**9"
        if close(value, params * 4 / GIB, atol=atol) or close(value, params * 4 / GIB / gpus, atol):
            return "count the gradients and AdamW's two moments too, not only the weights"
    if close(ddp, full / gpus, atol=atol):
        return "ddp_gib: DDP keeps a full copy of everything on every GPU"
    if not close(ddp, full, atol=atol):
        return "ddp_gib: weights, gradients and AdamW's moments, 16 bytes per parameter"
    if not close(fsdp, full / gpus, atol=atol):
        return "fsdp_gib: full sharding divides all three among the GPUs"
    count = _as_int(min_gpus)
    want = math.ceil(full / gpu_gib)
    if count is None:
        return "min_gpus: a whole number of GPUs"
    if count == want:
        return None
    if count == math.ceil(params * BYTES_PER_PARAMETER / 1e9 / gpu_gib):
        return "min_gpus: a GiB is 2**30 bytes, not 10**9"
    if count == want - 1:
        return "min_gpus: round up: a fraction of a GPU does not exist"
    return "min_gpus: the fewest GPUs whose memory together holds the full states"


# ---------------------------------------------------- 12.4 change and measure: 2 x 32


class InDtype(nn.Module):
    """The chapter script's wrapper: the model computed in ``dtype`` (weights and batches)."""

    def __init__(self, model: nn.Module, dtype: torch.dtype):
        super().__init__()
        self.model, self.dtype = model.to(dtype), dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.to(self.dtype))


def train_like_the_script(context, batch: int) -> dict[str, torch.Tensor]:
    """The chapter's training script, run in one process with ``batch`` images per step."""
    settings = context["script_settings"]
    (train_x, train_y), (val_x, val_y) = context["train_set"], context["val_set"]
    with torch.random.fork_rng(devices=[]), one_thread():
        torch.manual_seed(settings["seed"])
        dtype = getattr(torch, settings["dtype"])
        model = InDtype(TwoConvNet(settings["num_classes"]), dtype)
        train_loader = TensorLoader(
            train_x, train_y, batch_size=batch, shuffle=True, device="cpu", seed=settings["seed"]
        )
        val_loader = TensorLoader(val_x, val_y, batch_size=256, device="cpu", split="val")
        fit(
            model,
            train_loader,
            val_loader=val_loader,
            epochs=settings["epochs"],
            device="cpu",
            progress=False,
            verbose=False,
        )
    return model.state_dict()


def _largest_gap(a, b) -> float | None:
    """The largest difference between two state dicts with the same tensors, else None."""
    if not hasattr(a, "keys") or set(a.keys()) != set(b.keys()):
        return None
    gaps = []
    for name, tensor in b.items():
        if not isinstance(a[name], torch.Tensor) or a[name].shape != tensor.shape:
            return None
        gaps.append((a[name].detach().double().cpu() - tensor.double()).abs().max().item())
    return max(gaps)


def _two_by_32(context, weights_2x32, matching_batch):
    batch = _as_int(matching_batch)
    if batch is None:
        return "matching_batch: a whole number of images"
    if batch == 32:
        return "matching_batch: two processes with 32 images each take how many per step?"
    if batch != 64:
        return "matching_batch: the global batch of the 2-process run"
    reference = context["weights_1x32"]
    gap = _largest_gap(weights_2x32, reference)
    if gap is None:
        return "weights_2x32: the state dict the script saved (torch.load(...)['model'])"
    if gap < TOLERANCE:
        return "weights_2x32 are the weights of the 1 x 32 (or 2 x 16) run: launch 2 x 32"
    want = train_like_the_script(context, batch=64)
    if _largest_gap(weights_2x32, want) >= TOLERANCE:
        return (
            "weights_2x32: run the chapter's script, unchanged but for --batch 32, on 2 processes"
        )
    return None


EXERCISES = [
    Exercise(
        "12.1",
        "global batch, steps per epoch and learning rate",
        2,
        ("global_batch", "steps_per_epoch", "scaled_lr"),
        _batch_arithmetic,
        "the global batch and the steps per epoch equal those of the helpers' TensorLoader "
        "sharded for the exercise's processes; the learning rate follows the linear scaling "
        "rule from a batch of 256; the shard helpers may not be called",
        context=("images_ex1", "processes_ex1", "batch_ex1", "base_lr_ex1"),
        forbidden=("shard", "DistributedSampler"),
    ),
    Exercise(
        "12.2",
        "which images does each process get?",
        2,
        ("train_shards", "eval_shards"),
        _shards,
        "each list equals the indices TensorLoader.shard gives that rank in the first epoch: "
        "shuffled and padded for training, in order and unpadded for evaluation; the shard "
        "helpers may not be called",
        context=("images_ex2", "processes_ex2"),
        forbidden=("shard", "DistributedSampler"),
    ),
    Exercise(
        "12.3",
        "memory per GPU, with and without sharding",
        2,
        ("ddp_gib", "fsdp_gib", "min_gpus"),
        _memory,
        "16 bytes per parameter in GiB (2**30 bytes), whole on every GPU with DDP and divided "
        "by the number of GPUs with full sharding (within 1%), and the fewest GPUs that hold "
        "the sharded states",
        context=("params_ex3", "gpus_ex3", "gpu_gib_ex3"),
    ),
    Exercise(
        "12.4",
        "two processes with 32 images each",
        3,
        ("weights_2x32", "matching_batch"),
        _two_by_32,
        "matching_batch is the global batch of 2 x 32; the judge trains the chapter's script in "
        "one process with that batch (CPU, float64, seeded) and the weights must agree "
        "within 1e-9",
        context=("script_settings", "train_set", "val_set", "weights_1x32"),
    ),
]
