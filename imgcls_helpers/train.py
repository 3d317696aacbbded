"""One correct training loop, used by every chapter after chapter 3.

It is split the way torchvision's reference scripts split theirs:

- :func:`train_one_epoch` is chapter 3's hand-written step in a loop (``zero_grad ->
  forward -> loss -> backward -> step``), plus mixed precision, gradient clipping, a
  per-batch scheduler and batch transforms such as MixUp. It keeps its running sums on the
  device, so the CPU never waits for the GPU inside the loop.
- :func:`evaluate` scores a model on a loader.
- :func:`fit` runs epochs of the two, and adds what a long run needs: a per-epoch scheduler,
  keeping the best epoch's weights, early stopping, atomic checkpoints that ``resume=True``
  continues from, a per-epoch hook, and ``torchrun`` (:mod:`imgcls_helpers.distributed`).
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from . import distributed
from .data import split_of
from .models import evaluating


def fast_dev_run() -> int | None:
    """``IMGCLS_FAST_DEV_RUN=N``: every training loop runs one epoch of at most N batches,
    and :func:`evaluate` looks at N batches.

    The same switch as PyTorch Lightning's ``fast_dev_run``: it proves that a long recipe runs
    end to end (data, model, loss, optimizer, scheduler, checkpoints, evaluation) in seconds
    on a CPU, without changing the recipe. Unset (the default), nothing is capped. The
    rehearsal of the ``cpu`` and ``full`` profiles (``make rehearse``) sets it.
    """
    value = os.environ.get("IMGCLS_FAST_DEV_RUN", "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"IMGCLS_FAST_DEV_RUN={value!r} must be a whole number of batches >= 1")
    return int(value)


def capped(batches: Iterable) -> Iterator:
    """``batches`` as they are, or only the first ``fast_dev_run()`` of them when it is set.

    Chapter loops that train by hand iterate over ``capped(loader)`` so that they honour the
    switch like :func:`fit` does.
    """
    limit = fast_dev_run()
    return iter(batches) if limit is None else itertools.islice(batches, limit)


def capped_epochs(epochs: int) -> int:
    """``epochs``, or 1 when :func:`fast_dev_run` is set."""
    return epochs if fast_dev_run() is None else min(epochs, 1)


def capped_steps(steps_per_epoch: int) -> int:
    """How many batches :func:`capped` lets through of ``steps_per_epoch``: what a schedule
    that steps every batch must be sized for."""
    limit = fast_dev_run()
    return steps_per_epoch if limit is None else min(steps_per_epoch, limit)


class Steps:
    """Exactly ``n`` batches of ``loader``, going round it as often as needed.

    For budgets counted in optimisation steps rather than epochs (chapter 5 trains every
    strategy for the same number of steps, on training sets of different sizes):
    ``fit(model, Steps(loader, 40), epochs=1, scheduler="cosine")`` takes 40 steps, and the
    schedule is sized for them.
    """

    def __init__(self, loader, n: int):
        self.loader, self.n = loader, n

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator:
        return itertools.islice(
            itertools.chain.from_iterable(itertools.repeat(self.loader)), self.n
        )


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the epoch and the step."""


@dataclass
class History:
    """What happened in each epoch; lists are aligned by index.

    ``extra`` holds per-epoch numbers that an ``on_epoch_end`` hook records (e.g. the
    accuracy on clean training images, chapter 6); they are checkpointed with the rest.
    """

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)  # at the end of each epoch's training
    seconds: list[float] = field(default_factory=list)
    extra: dict[str, list[float]] = field(default_factory=dict)
    best_epoch: int | None = None
    best_val_acc: float | None = None
    stopped_early: bool = False

    @property
    def total_seconds(self) -> float:
        return float(sum(self.seconds))

    def add(self, **values: float) -> None:
        """Append one epoch's ``values`` to the lists of those names."""
        for name, value in values.items():
            getattr(self, name).append(value)


def autocast_dtype(device: torch.device) -> torch.dtype:
    """bfloat16 where the hardware has it (CPUs, Ampere GPUs and newer), else float16.

    Colab's T4 only emulates bfloat16, slowly, although ``is_bf16_supported()`` says yes: it
    gets float16 (with a gradient scaler) instead.
    """
    if device.type == "cuda" and not torch.cuda.is_bf16_supported(including_emulation=False):
        return torch.float16
    return torch.bfloat16


def _tally(totals: torch.Tensor, loss, logits, y, step: int) -> None:
    """Add one batch to ``totals`` = (loss sum, correct, images, first non-finite step), on the
    device: no ``.item()``, so the CPU queues the next batch instead of waiting."""
    hard_y = y.argmax(dim=1) if y.ndim > 1 else y  # MixUp gives soft targets
    totals[0] += loss.detach().float() * len(y)
    totals[1] += (logits.detach().argmax(dim=1) == hard_y).sum()
    totals[2] += len(y)
    first_bad = (totals[3] == 0) & ~torch.isfinite(loss.detach())
    totals[3] = torch.where(first_bad, step, totals[3])


def _totals(totals: torch.Tensor) -> list[float]:
    """The sums over all processes (torchrun), read once: the epoch's one wait for the device."""
    distributed.all_reduce(totals[:3], "sum")
    distributed.all_reduce(totals[3:], "max")
    return totals.tolist()


def train_one_epoch(
    model: nn.Module,
    loader,
    optimizer: torch.optim.Optimizer,
    loss_fn: nn.Module,
    *,
    device: torch.device,
    epoch: int = 1,
    scheduler=None,
    batch_transform: Callable | None = None,
    grad_clip: float | None = None,
    amp: bool = False,
    scaler: torch.amp.GradScaler | None = None,
    channels_last: bool = False,
    progress: bool = False,
) -> tuple[float, float]:
    """One pass over ``loader``; returns the mean training loss and accuracy.

    ``scheduler``, if given, steps after every batch. A non-finite loss is not checked batch by
    batch (that would make the CPU wait for the GPU at every step): the first bad step is
    recorded on the device, and at the end of the epoch the weights go back to where they
    were at its start and :class:`TrainingDiverged` names the epoch and the step.
    """
    scaler = scaler or torch.amp.GradScaler(device.type, enabled=False)
    start = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    totals = torch.zeros(4, device=device)
    model.train()
    batches = tqdm(capped(loader), f"epoch {epoch}", capped_steps(len(loader)), leave=False,
                   disable=not progress)  # fmt: skip
    for step, (x, y) in enumerate(batches, start=1):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if channels_last and x.ndim == 4:  # the layout tensor cores prefer
            x = x.contiguous(memory_format=torch.channels_last)
        if batch_transform is not None:
            x, y = batch_transform(x, y)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=autocast_dtype(device), enabled=amp):
            logits = model(x)
            loss = loss_fn(logits, y)
        scaler.scale(loss).backward()
        if grad_clip is not None:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(optimizer)
        scaler.update()
        if scheduler is not None:
            scheduler.step()
        _tally(totals, loss, logits, y, step)
    loss_sum, correct, seen, bad_step = _totals(totals)
    if bad_step:
        model.load_state_dict(start)
        raise TrainingDiverged(
            f"the training loss became NaN or infinite at epoch {epoch}, step {int(bad_step)}; "
            f"the weights are back to the start of epoch {epoch}. Try a smaller learning rate "
            f"(lr={optimizer.param_groups[0]['lr']:.3g}), grad_clip=1.0, or check the inputs "
            "for NaN values"
        )
    return loss_sum / seen, correct / seen


@torch.no_grad()
def evaluate(model: nn.Module, loader, loss_fn: nn.Module | None = None, device=None):
    """Mean loss and accuracy of ``model`` over ``loader``, in eval mode, without gradients.

    With ``IMGCLS_FAST_DEV_RUN=N`` only the first N batches count, like the evaluation loops
    of Lightning's ``fast_dev_run``. Under ``torchrun`` the sums are added up over the
    processes, so every process must call it (each on its shard, or all on the same data).
    """
    device = torch.device(device) if device else next(model.parameters()).device
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    totals = torch.zeros(4, device=device)
    with evaluating(model):
        for step, (x, y) in enumerate(capped(loader), start=1):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            logits = model(x).float()
            _tally(totals, loss_fn(logits, y), logits, y, step)
    loss_sum, correct, seen, _ = _totals(totals)
    return loss_sum / seen, correct / seen


def _make_optimizer(model: nn.Module, optimizer, lr: float, weight_decay: float, momentum: float):
    if isinstance(optimizer, torch.optim.Optimizer):
        return optimizer
    params = [p for p in model.parameters() if p.requires_grad]
    if callable(optimizer):  # a factory, e.g. functools.partial(torch.optim.SGD, lr=0.01)
        return optimizer(params)
    if optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=momentum > 0
        )
    raise ValueError(
        f"optimizer must be 'adamw', 'sgd', a torch.optim.Optimizer or a factory "
        f"params -> Optimizer, not {optimizer!r}"
    )


def _make_scheduler(scheduler, optimizer, steps: int):
    """The scheduler, built from a preset or a factory; ``steps`` is how often it will step."""
    if scheduler is None or hasattr(scheduler, "step"):
        return scheduler
    if scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    if scheduler == "onecycle":
        max_lr = [g["lr"] for g in optimizer.param_groups]
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr, total_steps=steps)
    if callable(scheduler):
        return scheduler(optimizer)  # a factory: optimizer -> scheduler
    raise ValueError(f"scheduler must be 'cosine', 'onecycle' or an LR scheduler: {scheduler!r}")


def _check_arguments(val_loader, scheduler, scheduler_interval: str, resume, checkpoint_dir):
    """Refuse what would train wrongly, before any training step."""
    if val_loader is not None and split_of(val_loader) == "test":
        raise ValueError(
            "val_loader is the test split: fit() picks and restores the best epoch on "
            "val_loader, so that would select on the test set. Pass a validation split "
            "(e.g. load_dataset(...).val) and score the test set once, after training, "
            "with train.evaluate()."
        )
    if scheduler_interval not in ("batch", "epoch"):
        raise ValueError(
            f"scheduler_interval must be 'batch' or 'epoch', not {scheduler_interval!r}"
        )
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau) and (
        val_loader is None or scheduler_interval != "epoch"
    ):
        raise ValueError(
            "ReduceLROnPlateau watches the validation loss once per epoch: pass val_loader= "
            "and scheduler_interval='epoch'"
        )
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs checkpoint_dir= to know where last.pt is")


def _atomic_save(obj, path: Path) -> None:
    """Write to a temporary file, then rename: a reader never sees a half-written checkpoint."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def save_checkpoint(folder: Path, model, optimizer, scheduler, scaler, history: History) -> None:
    """``folder/last.pt``: everything :func:`load_checkpoint` needs to continue the run."""
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict(),
        "epoch": history.epoch[-1],
        "history": asdict(history),
    }
    _atomic_save(state, folder / "last.pt")


def load_checkpoint(folder: Path, model, optimizer, scheduler, scaler, verbose: bool):
    """Load ``folder/last.pt`` into the training objects; return the history so far and the
    best epoch's weights (from ``best.pt``), or an empty history if there is no checkpoint."""
    last, best = folder / "last.pt", folder / "best.pt"
    if not last.exists():
        if verbose:
            print(f"no checkpoint at {last} yet: starting from epoch 1")
        return History(), None
    device = next(model.parameters()).device
    state = torch.load(last, map_location=device, weights_only=False)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scaler.load_state_dict(state["scaler"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    best_state = torch.load(best, weights_only=True)["model"] if best.exists() else None
    if verbose:
        print(
            f"resumed from {last}: epoch {state['epoch']} done, continuing at {state['epoch'] + 1}"
        )
    return History(**state["history"]), best_state


def _keep_if_best(history: History, model: nn.Module, folder: Path | None, best, write: bool):
    """The best epoch's weights so far (copied to the CPU), also written to ``best.pt``."""
    epoch, val_acc = history.epoch[-1], history.val_acc[-1]
    if history.best_val_acc is not None and val_acc <= history.best_val_acc:
        return best
    history.best_epoch, history.best_val_acc = epoch, val_acc
    best = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    if folder and write:
        _atomic_save({"model": best, "epoch": epoch, "val_acc": val_acc}, folder / "best.pt")
    return best


def _cuda_defaults(model: nn.Module, device, amp: bool | None, channels_last: bool | None):
    """Mixed precision and channels-last, on by default on CUDA; moves the model there."""
    amp = device.type == "cuda" if amp is None else amp
    channels_last = device.type == "cuda" if channels_last is None else channels_last
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model.to(device, memory_format=layout)
    return amp, channels_last


def _step_per_epoch(scheduler, history: History) -> None:
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(history.val_loss[-1])
    else:
        scheduler.step()


def _out_of_patience(history: History, patience: int | None, verbose: bool) -> bool:
    """Early stopping: ``patience`` epochs have passed without a better validation accuracy."""
    if patience is None or history.best_epoch is None:
        return False
    history.stopped_early = history.epoch[-1] - history.best_epoch >= patience
    if history.stopped_early and verbose:
        tqdm.write(f"early stop: no better validation accuracy for {patience} epochs")
    return history.stopped_early


def _report(history: History, epochs: int) -> None:
    # no seconds here: on a shared machine one epoch's time is noise, not evidence
    # (they are in history.seconds for whoever measures properly)
    line = f"epoch {history.epoch[-1]}/{epochs}  train loss {history.train_loss[-1]:.3f}"
    line += f" acc {history.train_acc[-1]:.1%}"
    if history.val_acc:
        line += f"  val loss {history.val_loss[-1]:.3f} acc {history.val_acc[-1]:.1%}"
    tqdm.write(line)


def fit(
    model: nn.Module,
    train_loader,
    *,
    val_loader=None,
    epochs: int = 10,
    optimizer: str | torch.optim.Optimizer | Callable = "adamw",
    lr: float = 1e-3,
    weight_decay: float = 0.01,
    momentum: float = 0.9,
    scheduler=None,
    scheduler_interval: str = "batch",
    label_smoothing: float = 0.0,
    class_weight: torch.Tensor | None = None,
    grad_clip: float | None = None,
    batch_transform: Callable | None = None,
    amp: bool | None = None,
    channels_last: bool | None = None,
    patience: int | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    on_epoch_end: Callable[[int, nn.Module, History], None] | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
    verbose: bool = True,
) -> History:
    """Train ``model`` and return its :class:`History`.

    Args:
        model: any ``nn.Module`` returning class scores ``(N, C)``; moved to ``device``.
        train_loader: yields ``(images, labels)``; labels may be soft ``(N, C)`` (MixUp).
        val_loader: the validation split (keyword only). Scored after every epoch; the best
            epoch's weights are kept and put back at the end. That is selection, so it must
            never be the test set: a loader labelled as the test split (``Splits.test``,
            ``TensorLoader(..., split="test")``, :func:`imgcls_helpers.data.mark_split`) is
            refused. Score the test set once, after training, with :func:`evaluate`.
        epochs: passes over ``train_loader``.
        optimizer: ``"adamw"``, ``"sgd"`` (Nesterov, with ``momentum``), an optimizer (e.g.
            with parameter groups) or a factory ``params -> optimizer``; for the last two,
            ``lr``, ``weight_decay`` and ``momentum`` are theirs, not these.
        lr, weight_decay, momentum: settings of the ``"adamw"`` / ``"sgd"`` presets.
        scheduler: ``"cosine"``, ``"onecycle"``, a ``torch.optim.lr_scheduler`` object, or a
            factory ``optimizer -> scheduler``.
        scheduler_interval: when the scheduler steps: after every ``"batch"`` (the presets
            are then sized for ``epochs * len(train_loader)`` steps) or every ``"epoch"``
            (sized for ``epochs``; ``ReduceLROnPlateau`` gets the validation loss).
        label_smoothing: passed to ``nn.CrossEntropyLoss``.
        class_weight: one weight per class for ``nn.CrossEntropyLoss`` (rare classes count
            more, e.g. :func:`imgcls_helpers.ownimages.class_weights`); the validation loss
            is weighted the same way, so the two stay comparable.
        grad_clip: clip the gradients' global norm to this value.
        batch_transform: ``(x, y) -> (x, y)`` on each training batch, e.g. ``v2.MixUp``.
        amp, channels_last: mixed precision and the channels-last layout; default on for CUDA,
            off elsewhere.
        patience: stop after this many epochs without a better validation accuracy.
        checkpoint_dir: write ``last.pt`` every epoch and ``best.pt`` on improvement, atomically.
        resume: continue from ``checkpoint_dir/last.pt``.
        on_epoch_end: ``(epoch, model, history) -> None``, called after each epoch is scored
            and before it is checkpointed; it may record numbers in ``history.extra``.
        device: default :func:`imgcls_helpers.config.get_device`.
        progress, verbose: progress bars; one printed line per epoch.

    Under ``torchrun --nproc_per_node=N`` the same call trains with DistributedDataParallel:
    each process takes its shard of the loaders (the batch size is per process), metrics
    are added up over processes, and only the first process prints and writes checkpoints.
    With ``IMGCLS_FAST_DEV_RUN=N`` set (:func:`fast_dev_run`), one epoch of at most N training
    and N validation batches runs, and the schedule is sized for that.
    """
    _check_arguments(val_loader, scheduler, scheduler_interval, resume, checkpoint_dir)
    run = distributed.setup(device)
    device, verbose = run.device, verbose and run.is_main
    progress = progress and run.is_main and not os.environ.get("TQDM_DISABLE")
    amp, channels_last = _cuda_defaults(model, device, amp, channels_last)
    train_loader = distributed.shard(train_loader, run, pad=True)
    if val_loader is not None:
        val_loader = distributed.shard(val_loader, run, pad=False)
    epochs = capped_epochs(epochs)
    optimizer = _make_optimizer(model, optimizer, lr, weight_decay, momentum)
    per_batch = scheduler_interval == "batch"
    steps = epochs * capped_steps(len(train_loader)) if per_batch else epochs
    scheduler = _make_scheduler(scheduler, optimizer, steps)
    scaler = torch.amp.GradScaler(
        device.type, enabled=amp and autocast_dtype(device) == torch.float16
    )
    weight = None if class_weight is None else torch.as_tensor(class_weight).float().to(device)
    loss_fn = nn.CrossEntropyLoss(weight=weight, label_smoothing=label_smoothing)
    folder = Path(checkpoint_dir) if checkpoint_dir else None
    if folder and run.is_main:
        folder.mkdir(parents=True, exist_ok=True)
    history, best = History(), None
    if resume:
        history, best = load_checkpoint(folder, model, optimizer, scheduler, scaler, verbose)
    ddp = distributed.wrap(model, run)  # the model itself when there is one process

    for epoch in tqdm(range(len(history.epoch) + 1, epochs + 1), "epochs", disable=not progress):
        started = time.perf_counter()
        if hasattr(getattr(train_loader, "sampler", None), "set_epoch"):
            train_loader.sampler.set_epoch(epoch)  # DistributedSampler: a new order each epoch
        loss, acc = train_one_epoch(
            ddp, train_loader, optimizer, loss_fn, device=device, epoch=epoch,
            scheduler=scheduler if per_batch else None, batch_transform=batch_transform,
            grad_clip=grad_clip, amp=amp, scaler=scaler, channels_last=channels_last,
            progress=progress,
        )  # fmt: skip
        history.add(epoch=epoch, train_loss=loss, train_acc=acc, lr=optimizer.param_groups[0]["lr"])
        if val_loader is not None:
            val_loss, val_acc = evaluate(model, val_loader, loss_fn, device)
            history.add(val_loss=val_loss, val_acc=val_acc)
            best = _keep_if_best(history, model, folder, best, write=run.is_main)
        if scheduler is not None and not per_batch:
            _step_per_epoch(scheduler, history)
        history.seconds.append(time.perf_counter() - started)
        if on_epoch_end is not None:
            on_epoch_end(epoch, model, history)
        if verbose:
            _report(history, epochs)
        if folder and run.is_main:
            save_checkpoint(folder, model, optimizer, scheduler, scaler, history)
        if _out_of_patience(history, patience, verbose):
            break

    if best is not None and history.best_epoch != history.epoch[-1]:
        model.load_state_dict(best)  # leave the model at its best epoch
        if verbose:
            print(f"restored the weights of epoch {history.best_epoch} (best validation accuracy)")
    return history


def load_or_train(model: nn.Module, path: str | Path, train: Callable[[], object]) -> bool:
    """Load finished weights from ``path`` if present (returns True), else run ``train()``
    and save the weights there (returns False). Saves re-training after a Colab restart."""
    path = Path(path)
    if path.exists():
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return True
    train()
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_save(model.state_dict(), path)
    return False
