"""One correct training loop, :func:`fit`, used by every chapter after chapter 3.

Chapter 3 writes the training step out by hand once; from then on chapters call ``fit`` so
that they can talk about models and data, not boilerplate. The loop does, per batch:
``zero_grad -> forward -> loss -> backward -> (clip) -> step -> (scheduler step)``. Around it:
mixed precision and channels_last on CUDA, label smoothing, batch-level transforms such as
MixUp, early stopping, a checkpoint every epoch (written atomically, so a Colab disconnect
never leaves a half-written file) that ``resume=True`` continues from, and a history.
"""

from __future__ import annotations

import copy
import itertools
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from .config import get_device
from .data import split_of
from .metrics import predict


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


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the epoch and the step."""


@dataclass
class History:
    """What happened in each epoch; lists are aligned by index."""

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    best_epoch: int | None = None
    best_val_acc: float | None = None
    stopped_early: bool = False

    @property
    def total_seconds(self) -> float:
        return float(sum(self.seconds))


def evaluate(model: nn.Module, loader, loss_fn: nn.Module | None = None, device=None):
    """Mean loss and accuracy of ``model`` over ``loader``, without gradients.

    With ``IMGCLS_FAST_DEV_RUN=N`` only the first N batches count, like the evaluation loops
    of Lightning's ``fast_dev_run``.
    """
    result = predict(model, capped(loader), device=device)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    loss = loss_fn(result.logits, result.targets).item()
    return loss, (result.preds == result.targets).float().mean().item()


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


def _make_scheduler(scheduler, optimizer, epochs: int, steps_per_epoch: int):
    """Return ``(scheduler, steps_per_batch)``; presets step per batch, others per epoch."""
    total = epochs * steps_per_epoch
    if scheduler is None:
        return None, False
    if scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total), True
    if scheduler == "onecycle":
        max_lr = [g["lr"] for g in optimizer.param_groups]
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr, total_steps=total), True
    if callable(scheduler) and not hasattr(scheduler, "step"):
        scheduler = scheduler(optimizer)  # a factory: optimizer -> scheduler
    if not hasattr(scheduler, "step"):
        raise ValueError(
            f"scheduler must be 'cosine', 'onecycle' or an LR scheduler: {scheduler!r}"
        )
    return scheduler, False


def _atomic_save(obj, path: Path) -> None:
    """Write to a temporary file, then rename: a reader never sees a half-written checkpoint."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _resume(checkpoint_dir: Path, model, optimizer, scheduler, scaler, verbose: bool):
    """Load ``last.pt`` into the training objects; return the history so far and best weights."""
    last, best = checkpoint_dir / "last.pt", checkpoint_dir / "best.pt"
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
    label_smoothing: float = 0.0,
    grad_clip: float | None = None,
    batch_transform: Callable | None = None,
    amp: bool | None = None,
    channels_last: bool | None = None,
    patience: int | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
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
        scheduler: ``"cosine"`` or ``"onecycle"`` (stepped every batch), or any
            ``torch.optim.lr_scheduler`` object or factory ``optimizer -> scheduler`` (stepped
            every epoch; ``ReduceLROnPlateau`` gets the validation loss).
        label_smoothing: passed to ``nn.CrossEntropyLoss``.
        grad_clip: clip the gradients' global norm to this value.
        batch_transform: ``(x, y) -> (x, y)`` on each training batch, e.g. ``v2.MixUp``.
        amp, channels_last: mixed precision and the channels-last layout; default on for CUDA,
            off elsewhere.
        patience: stop after this many epochs without a better validation accuracy.
        checkpoint_dir: write ``last.pt`` every epoch and ``best.pt`` on improvement, atomically.
        resume: continue from ``checkpoint_dir/last.pt``.
        device: default :func:`imgcls_helpers.config.get_device`.
        progress, verbose: progress bars; one printed line per epoch.

    With ``IMGCLS_FAST_DEV_RUN=N`` set (:func:`fast_dev_run`), one epoch of at most N training
    and N validation batches runs, and the schedule is sized for that.
    """
    if val_loader is not None and split_of(val_loader) == "test":
        raise ValueError(
            "val_loader is the test split: fit() picks and restores the best epoch on "
            "val_loader, so that would select on the test set. Pass a validation split "
            "(e.g. load_dataset(...).val) and score the test set once, after training, "
            "with train.evaluate()."
        )
    epochs, steps_per_epoch = capped_epochs(epochs), capped_steps(len(train_loader))
    device = torch.device(device) if device else get_device()
    amp = device.type == "cuda" if amp is None else amp
    channels_last = device.type == "cuda" if channels_last is None else channels_last
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model.to(device, memory_format=memory_format)
    optimizer = _make_optimizer(model, optimizer, lr, weight_decay, momentum)
    scheduler, step_per_batch = _make_scheduler(scheduler, optimizer, epochs, steps_per_epoch)
    plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    if plateau and val_loader is None:
        raise ValueError("ReduceLROnPlateau watches the validation loss: pass val_loader=")
    amp_dtype = (
        torch.bfloat16 if device.type != "cuda" or torch.cuda.is_bf16_supported() else torch.float16
    )
    scaler = torch.amp.GradScaler(device.type, enabled=amp and amp_dtype == torch.float16)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    history, start_epoch, best_state = History(), 1, None

    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
    if checkpoint_dir:
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
    if resume:
        if checkpoint_dir is None:
            raise ValueError("resume=True needs checkpoint_dir= to know where last.pt is")
        history, best_state = _resume(checkpoint_dir, model, optimizer, scheduler, scaler, verbose)
        start_epoch = (history.epoch[-1] + 1) if history.epoch else 1

    hide_bars = not progress or bool(os.environ.get("TQDM_DISABLE"))  # set for book builds
    epochs_bar = tqdm(range(start_epoch, epochs + 1), desc="epochs", disable=hide_bars)
    for epoch in epochs_bar:
        model.train()
        started, seen, loss_sum, correct = time.perf_counter(), 0, 0.0, 0.0
        batches = tqdm(
            capped(train_loader),
            desc=f"epoch {epoch}",
            total=steps_per_epoch,
            leave=False,
            disable=hide_bars,
        )
        for step, (x, y) in enumerate(batches, start=1):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if channels_last and x.ndim == 4:  # the layout tensor cores prefer
                x = x.contiguous(memory_format=torch.channels_last)
            if batch_transform is not None:
                x, y = batch_transform(x, y)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp):
                logits = model(x)
                loss = loss_fn(logits, y)
            if not torch.isfinite(loss):
                raise TrainingDiverged(
                    f"the training loss became {loss.item()} at epoch {epoch}, step {step}; "
                    f"try a smaller learning rate (lr={optimizer.param_groups[0]['lr']:.3g}), "
                    "grad_clip=1.0, or check the inputs for NaN values"
                )
            scaler.scale(loss).backward()
            if grad_clip is not None:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            scaler.step(optimizer)
            scaler.update()
            if scheduler is not None and step_per_batch:
                scheduler.step()
            hard_y = y.argmax(dim=1) if y.ndim > 1 else y  # MixUp gives soft targets
            seen += len(y)
            loss_sum += loss.item() * len(y)
            correct += (logits.argmax(dim=1) == hard_y).sum().item()

        history.epoch.append(epoch)
        history.train_loss.append(loss_sum / seen)
        history.train_acc.append(correct / seen)
        history.lr.append(optimizer.param_groups[0]["lr"])
        if val_loader is not None:
            val_loss, val_acc = evaluate(model, val_loader, loss_fn, device)
            history.val_loss.append(val_loss)
            history.val_acc.append(val_acc)
            if history.best_val_acc is None or val_acc > history.best_val_acc:
                history.best_epoch, history.best_val_acc = epoch, val_acc
                best_state = copy.deepcopy({k: v.cpu() for k, v in model.state_dict().items()})
                if checkpoint_dir:
                    _atomic_save(
                        {"model": best_state, "epoch": epoch, "val_acc": val_acc},
                        checkpoint_dir / "best.pt",
                    )
        if scheduler is not None and not step_per_batch:
            if plateau:
                scheduler.step(history.val_loss[-1])
            else:
                scheduler.step()
        history.seconds.append(time.perf_counter() - started)

        line = (
            f"epoch {epoch}/{epochs}  "
            f"train loss {history.train_loss[-1]:.3f} acc {history.train_acc[-1]:.1%}"
        )
        if val_loader is not None:
            line += f"  val loss {history.val_loss[-1]:.3f} acc {history.val_acc[-1]:.1%}"
        epochs_bar.set_postfix_str(line.split("  ", 1)[1])
        if verbose:
            # no seconds here: on a shared machine one epoch's time is noise, not evidence
            # (they are in history.seconds for whoever measures properly)
            tqdm.write(line)
        if checkpoint_dir:
            _atomic_save(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else None,
                    "scaler": scaler.state_dict(),
                    "epoch": epoch,
                    "history": asdict(history),
                },
                checkpoint_dir / "last.pt",
            )
        if (
            patience is not None
            and history.best_epoch is not None
            and epoch - history.best_epoch >= patience
        ):
            history.stopped_early = True
            if verbose:
                tqdm.write(f"early stop: no better validation accuracy for {patience} epochs")
            break

    if best_state is not None and history.best_epoch != history.epoch[-1]:
        model.load_state_dict(best_state)  # leave the model at its best epoch
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
