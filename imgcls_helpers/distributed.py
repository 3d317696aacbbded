"""What :func:`imgcls_helpers.train.fit` needs to run unchanged under ``torchrun``.

``torchrun --nproc_per_node=N script.py`` starts N copies of a script and tells each its
``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` in the environment. PyTorch's
``DistributedDataParallel`` (DDP) then does the hard part: every process holds a full copy of
the model, trains on its own shard of each epoch, and the gradients are averaged across
processes during ``backward()``, so the copies stay identical. What is left, and lives here:

- :func:`setup` starts the process group (NCCL on GPUs, gloo on CPUs) and picks this
  process's device;
- :func:`shard` gives each process its share of a loader, as ``DistributedSampler`` does;
- :func:`wrap` puts the model in DDP;
- :func:`all_reduce` adds up metrics across processes.

Outside ``torchrun`` (``WORLD_SIZE`` unset or 1) :func:`setup` returns a one-process
:class:`Run` and everything here is a no-op, so ``fit`` has one code path.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from .config import get_device


@dataclass(frozen=True)
class Run:
    """This process's place in a (possibly one-process) run."""

    rank: int
    world: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 prints, shows progress and writes checkpoints; the others stay quiet."""
        return self.rank == 0


def setup(device: torch.device | str | None = None) -> Run:
    """The process group and device of this process; starts the group on first use.

    Under ``torchrun`` each process gets ``cuda:LOCAL_RANK`` when CUDA is there (NCCL), or
    the CPU (gloo). ``device`` is kept as given outside ``torchrun``.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Run(0, 1, torch.device(device) if device else get_device())
    cuda = torch.cuda.is_available() and (device is None or torch.device(device).type == "cuda")
    here = torch.device("cuda", int(os.environ["LOCAL_RANK"])) if cuda else torch.device("cpu")
    if not dist.is_initialized():
        if cuda:
            torch.cuda.set_device(here)
        dist.init_process_group("nccl" if cuda else "gloo", device_id=here if cuda else None)
        # without this PyTorch warns at exit that the group was never destroyed
        atexit.register(dist.destroy_process_group)
    return Run(dist.get_rank(), dist.get_world_size(), here)


def shard(loader, run: Run, *, pad: bool):
    """This process's share of ``loader``: every ``world``-th item of each epoch's order.

    ``pad=True`` (training) repeats a few items so that every process gets the same number of
    batches, which DDP needs: a process that ran out early would leave the others waiting in
    ``backward()``. Evaluation uses ``pad=False``, so that no image counts twice.
    A :class:`~imgcls_helpers.data.TensorLoader` shards itself; a ``DataLoader`` is rebuilt
    with a ``DistributedSampler`` (training) or a strided list of indices (evaluation).
    The batch size stays per process, as in torchvision's reference scripts: N processes
    take N times as many images per optimiser step.
    """
    if run.world == 1:
        return loader
    if hasattr(loader, "shard"):
        return loader.shard(run.rank, run.world, pad=pad)
    if not isinstance(loader, DataLoader):
        raise TypeError(
            f"under torchrun fit() shards a TensorLoader or a DataLoader, not a "
            f"{type(loader).__name__}: give each process its own part of the data"
        )
    if pad:
        shuffle = isinstance(loader.sampler, RandomSampler)
        sampler = DistributedSampler(
            loader.dataset, run.world, run.rank, shuffle=shuffle, drop_last=loader.drop_last
        )
    else:
        sampler = list(range(run.rank, len(loader.dataset), run.world))
    return DataLoader(
        loader.dataset,
        batch_size=loader.batch_size,
        sampler=sampler,
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory,
        drop_last=loader.drop_last,
        persistent_workers=loader.persistent_workers,
    )


def wrap(model: nn.Module, run: Run) -> nn.Module:
    """``model`` in ``DistributedDataParallel`` when there are several processes: it averages
    the gradients across them during ``backward()``. The model itself when there is one."""
    if run.world == 1:
        return model
    return DistributedDataParallel(model, [run.device] if run.device.type == "cuda" else None)


def all_reduce(tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """``tensor`` summed (or maxed, ``op="max"``) over all processes, in place; as it is when
    there is one process."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(tensor, dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX)
    return tensor
