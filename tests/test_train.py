"""Tests of fit(): it learns, it resumes where it stopped, and it fails clearly."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision.transforms import v2

from imgcls_helpers import data, metrics, models, synthetic, train
from imgcls_helpers.config import seed_everything

SHAPES_MEAN, SHAPES_STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def shapes_loaders(n_train: int, n_val: int, *, shuffle: bool = True, batch_size: int = 64):
    """A training loader and a validation loader of generated shapes."""
    tr = synthetic.make_shapes(n_train, seed=0)
    va = synthetic.make_shapes(n_val, seed=1)
    kwargs = dict(mean=SHAPES_MEAN, std=SHAPES_STD, device="cpu")
    return (
        data.TensorLoader(
            tr.images, tr.labels, batch_size=batch_size, shuffle=shuffle, split="train", **kwargs
        ),
        data.TensorLoader(va.images, va.labels, batch_size=256, split="val", **kwargs),
    )


def tiny_model(num_classes: int = 8) -> nn.Module:
    return models.SmallCNN(num_classes, width=4)


def test_small_cnn_learns_shapes_and_beats_a_linear_model():
    """The learning test: a small CNN goes far above chance (1/8) in 8 epochs.

    A linear model on raw pixels with the same budget stays near chance, which is what makes
    the shapes set worth teaching with: the methods of the book give different results on it.
    """
    seed_everything(0)
    train_loader, val_loader = shapes_loaders(4000, 500)
    cnn = models.SmallCNN(8, width=16)
    history = train.fit(
        cnn,
        train_loader,
        val_loader=val_loader,
        epochs=8,
        lr=1e-2,
        scheduler="onecycle",
        device="cpu",
        progress=False,
        verbose=False,
    )
    linear = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 8))
    linear_history = train.fit(
        linear,
        train_loader,
        val_loader=val_loader,
        epochs=8,
        lr=1e-3,
        device="cpu",
        progress=False,
        verbose=False,
    )
    cnn_acc, linear_acc = history.best_val_acc, linear_history.best_val_acc
    print(f"small CNN: {cnn_acc:.1%}; linear on pixels: {linear_acc:.1%}")
    assert cnn_acc >= 0.60, f"CNN reached only {cnn_acc:.1%} (chance is 12.5%)"
    assert cnn_acc - linear_acc >= 0.30
    assert history.train_loss[-1] < history.train_loss[0]


def test_resume_continues_exactly_where_training_stopped(tmp_path):
    """Interrupt after 2 of 4 epochs, resume: same weights and history as an unbroken run."""
    train_loader, val_loader = shapes_loaders(256, 128, shuffle=False)
    common = dict(epochs=4, lr=3e-3, scheduler="cosine", device="cpu", progress=False)

    seed_everything(0)
    unbroken = tiny_model()
    reference = train.fit(unbroken, train_loader, val_loader=val_loader, verbose=False, **common)

    seed_everything(0)
    first = tiny_model()
    stop_at = 2 * len(train_loader) + 1  # the first batch of epoch 3

    class Interrupting:
        def __init__(self, loader):
            self.loader, self.seen = loader, 0

        def __len__(self):
            return len(self.loader)

        def __iter__(self):
            for batch in self.loader:
                self.seen += 1
                if self.seen == stop_at:
                    raise KeyboardInterrupt  # what a Colab disconnect or Ctrl-C looks like
                yield batch

    with pytest.raises(KeyboardInterrupt):
        train.fit(
            first,
            Interrupting(train_loader),
            val_loader=val_loader,
            checkpoint_dir=tmp_path,
            verbose=False,
            **common,
        )
    assert torch.load(tmp_path / "last.pt", weights_only=False)["epoch"] == 2

    resumed_model = tiny_model()  # a fresh process would start from new random weights
    resumed = train.fit(
        resumed_model,
        train_loader,
        val_loader=val_loader,
        checkpoint_dir=tmp_path,
        resume=True,
        verbose=True,
        **common,
    )
    assert resumed.epoch == [1, 2, 3, 4]
    assert resumed.train_loss == pytest.approx(reference.train_loss, rel=1e-4)
    assert resumed.lr == pytest.approx(reference.lr, rel=1e-6)
    for (name, a), b in zip(
        unbroken.state_dict().items(), resumed_model.state_dict().values(), strict=True
    ):
        assert torch.allclose(a.float(), b.float(), atol=1e-5), name


KILLED_SCRIPT = textwrap.dedent(
    """
    import sys, torch
    from imgcls_helpers import data, metrics, models, synthetic, train
    torch.set_num_threads(1)
    shapes = synthetic.make_shapes(512, seed=0)
    loader = data.TensorLoader(shapes.images, shapes.labels, batch_size=32, shuffle=True,
                               device="cpu")
    train.fit(models.SmallCNN(8, width=8), loader, epochs=1000, device="cpu",
              checkpoint_dir=sys.argv[1], progress=False, verbose=False)
    """
)


def test_a_killed_run_leaves_a_checkpoint_that_resumes(tmp_path):
    """SIGKILL a training process mid-run; the checkpoint on disk is whole and resumable."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    process = subprocess.Popen([sys.executable, "-c", KILLED_SCRIPT, str(tmp_path)], env=env)
    last = tmp_path / "last.pt"
    try:
        deadline = time.time() + 300  # a liveness bound, not a speed test
        while time.time() < deadline:
            if last.exists() and torch.load(last, weights_only=False)["epoch"] >= 2:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the training process wrote no checkpoint within 300 s")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    saved = torch.load(last, weights_only=False)
    saved_epoch = saved["epoch"]
    shapes = synthetic.make_shapes(64, seed=0)
    loader = data.TensorLoader(shapes.images, shapes.labels, batch_size=32, device="cpu")
    history = train.fit(
        models.SmallCNN(8, width=8),
        loader,
        epochs=saved_epoch + 1,
        device="cpu",
        checkpoint_dir=tmp_path,
        resume=True,
        progress=False,
        verbose=False,
    )
    assert history.epoch == list(range(1, saved_epoch + 2))
    # the epochs before the kill are the killed run's, not a new run's on these 64 images
    assert history.train_loss[:saved_epoch] == saved["history"]["train_loss"]


class PoisonedLoader:
    """Batches of 16 from ``images``; in epoch ``bad_epoch`` the ``bad_step``-th batch is NaN."""

    def __init__(self, images, labels, bad_epoch: int, bad_step: int):
        self.images, self.labels, self.bad = images, labels, (bad_epoch, bad_step)
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.labels) // 16

    def __iter__(self):
        self.epoch += 1
        for step in range(1, len(self) + 1):
            x = self.images[(step - 1) * 16 : step * 16].clone()
            if (self.epoch, step) == self.bad:
                x[0] = float("nan")
            yield x, self.labels[(step - 1) * 16 : step * 16]


def test_nan_loss_stops_with_the_epoch_and_step_named(tmp_path):
    """The loss is checked on the device and read once per epoch, so the bad step is found at
    the end of the epoch: the error names it, and neither the model nor a checkpoint keeps
    non-finite weights."""
    torch.manual_seed(0)
    images, labels = torch.randn(64, 3, 8, 8), torch.randint(0, 3, (64,))
    loader = PoisonedLoader(images, labels, bad_epoch=2, bad_step=3)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 3))
    with pytest.raises(train.TrainingDiverged, match=r"epoch 2, step 3"):
        train.fit(model, loader, epochs=3, device="cpu", checkpoint_dir=tmp_path,
                  progress=False, verbose=False)  # fmt: skip
    assert all(torch.isfinite(p).all() for p in model.parameters()), "NaN weights were kept"
    saved = torch.load(tmp_path / "last.pt", weights_only=False)
    assert saved["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in saved["model"].values())
    # the weights are those that epoch 2 started from, i.e. the end of epoch 1
    for name, value in model.state_dict().items():
        assert torch.equal(value, saved["model"][name]), name


def blobs_loaders(n: int = 512, classes: int = 4, seed: int = 0):
    """Gaussian blobs as 3x4x4 "images": a linear model separates them within one epoch."""
    g = torch.Generator().manual_seed(seed)
    centres = 2 * torch.randn(classes, 3, 4, 4, generator=g)
    labels = torch.arange(2 * n) % classes
    images = centres[labels] + torch.randn(2 * n, 3, 4, 4, generator=g)
    options = dict(batch_size=32, mean=(0.0,) * 3, std=(1.0,) * 3, device="cpu")
    return (
        data.TensorLoader(images[:n], labels[:n], shuffle=True, split="train", **options),
        data.TensorLoader(images[n:], labels[n:], split="val", **options),
    )


def linear_model(classes: int = 4) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, classes))


def learn_then_unlearn(lr: float = 0.05):
    """SGD that learns in epoch 1 and then climbs the loss (a negative learning rate), so the
    validation accuracy is best after epoch 1 and falls afterwards."""
    factors = lambda epoch: 1.0 if epoch == 0 else -1.0  # noqa: E731
    return dict(
        optimizer="sgd", lr=lr, momentum=0.0, weight_decay=0.0,
        scheduler=lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, factors),
        scheduler_interval="epoch",
    )  # fmt: skip


def test_early_stopping_stops_after_patience_epochs_without_improvement(tmp_path):
    seed_everything(0)
    train_loader, val_loader = blobs_loaders()
    history = train.fit(
        linear_model(), train_loader, val_loader=val_loader, epochs=20, patience=2,
        device="cpu", progress=False, verbose=False, **learn_then_unlearn(),
    )  # fmt: skip
    assert history.best_epoch == 1
    assert history.stopped_early and history.epoch == [1, 2, 3]


def test_the_best_epoch_weights_are_put_back_and_saved(tmp_path):
    seed_everything(0)
    train_loader, val_loader = blobs_loaders()
    model = linear_model()
    history = train.fit(
        model, train_loader, val_loader=val_loader, epochs=3, checkpoint_dir=tmp_path,
        device="cpu", progress=False, verbose=False, **learn_then_unlearn(),
    )  # fmt: skip
    assert history.best_epoch == 1 and history.val_acc[-1] < history.best_val_acc
    best = torch.load(tmp_path / "best.pt", weights_only=True)["model"]
    last = torch.load(tmp_path / "last.pt", weights_only=False)["model"]
    for name, value in model.state_dict().items():
        assert torch.equal(value, best[name]), name
        assert not torch.equal(value, last[name]), name
    _, acc = train.evaluate(model, val_loader)
    assert acc == pytest.approx(history.best_val_acc)


def lrs(scheduler, interval: str, epochs: int = 3, **options) -> list[float]:
    """The learning rate after each epoch of SGD at lr 0.1 with ``scheduler`` (2 batches an
    epoch)."""
    train_loader, _ = shapes_loaders(128, 8)
    return train.fit(
        tiny_model(), train_loader, epochs=epochs, optimizer="sgd", lr=0.1,
        scheduler=scheduler, scheduler_interval=interval, device="cpu", progress=False,
        verbose=False, **options,
    ).lr  # fmt: skip


def test_a_scheduler_steps_per_epoch_or_per_batch_as_asked():
    step = lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)  # noqa: E731
    assert lrs(step, "epoch") == pytest.approx([0.1, 0.05, 0.025])  # the lr each epoch used
    assert lrs(step, "batch") == pytest.approx([0.025, 0.00625, 0.0015625])  # 2 batches an epoch
    assert lrs(None, "batch") == pytest.approx([0.1, 0.1, 0.1])


def test_the_presets_are_sized_for_the_interval():
    """ "cosine" over 4 epochs of 2 batches: per batch, one epoch is 2 of its 8 steps; per
    epoch, the first epoch runs at the full rate and the last at a quarter of the way up."""
    cosine = lambda done, total: 0.1 * (1 + math.cos(math.pi * done / total)) / 2  # noqa: E731
    assert lrs("cosine", "batch", epochs=4) == pytest.approx(
        [cosine(2, 8), cosine(4, 8), cosine(6, 8), 0.0], abs=1e-9
    )
    assert lrs("cosine", "epoch", epochs=4) == pytest.approx([cosine(k, 4) for k in range(4)])
    onecycle = lrs("onecycle", "batch", epochs=4)  # warm-up (within epoch 1), then down
    assert onecycle[0] > 0.09 and onecycle[0] > onecycle[1] > onecycle[2]


def test_reduce_on_plateau_watches_the_validation_loss():
    train_loader, val_loader = shapes_loaders(128, 64)
    made = []

    def plateau(optimizer):
        made.append(torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, patience=0))
        return made[-1]

    history = train.fit(
        tiny_model(), train_loader, val_loader=val_loader, epochs=3, scheduler=plateau,
        scheduler_interval="epoch", device="cpu", progress=False, verbose=False,
    )  # fmt: skip
    assert made[0].best == pytest.approx(min(history.val_loss))
    assert made[0].best != pytest.approx(min(history.train_loss))
    model = tiny_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer)
    for bad in ({"scheduler_interval": "batch"}, {"val_loader": None}):
        options = {"val_loader": val_loader, "scheduler_interval": "epoch", **bad}
        with pytest.raises(ValueError, match="ReduceLROnPlateau"):
            train.fit(model, train_loader, epochs=1, optimizer=optimizer, scheduler=scheduler,
                      device="cpu", progress=False, **options)  # fmt: skip
    with pytest.raises(ValueError, match="scheduler_interval"):
        train.fit(tiny_model(), train_loader, epochs=1, scheduler_interval="step")


def test_grad_clip_bounds_every_update():
    """With plain SGD (lr 1, no momentum) a step moves the weights by at most lr * clip."""
    train_loader, _ = shapes_loaders(64, 8, batch_size=64)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 8))
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    train.fit(
        model,
        train_loader,
        epochs=1,
        optimizer="sgd",
        lr=1.0,
        momentum=0.0,
        weight_decay=0.0,
        grad_clip=1e-3,
        device="cpu",
        progress=False,
        verbose=False,
    )
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert (after - before).norm() <= 1e-3 * 1.0001
    assert (after - before).norm() > 0


class Counting:
    """Wraps a batch transform and counts its calls."""

    def __init__(self, transform):
        self.transform, self.calls = transform, 0

    def __call__(self, x, y):
        self.calls += 1
        return self.transform(x, y)


def test_batch_transform_changes_what_the_model_is_trained_on():
    """A transform that relabels every training image as class 0 teaches the model to answer
    0 everywhere; MixUp's soft labels go through the same hook on every batch."""
    seed_everything(0)
    train_loader, val_loader = blobs_loaders()
    all_zero = Counting(lambda x, y: (x, torch.zeros_like(y)))
    model = linear_model()
    history = train.fit(model, train_loader, epochs=2, lr=0.05, batch_transform=all_zero,
                        device="cpu", progress=False, verbose=False)  # fmt: skip
    assert all_zero.calls == 2 * len(train_loader)
    assert history.train_acc[-1] > 0.95  # against the relabelled targets
    predictions = metrics.predict(model, val_loader).preds
    assert (predictions == 0).float().mean() > 0.95

    mixup = Counting(v2.MixUp(alpha=0.4, num_classes=4))
    history = train.fit(linear_model(), train_loader, epochs=1, batch_transform=mixup,
                        device="cpu", progress=False, verbose=False)  # fmt: skip
    assert mixup.calls == len(train_loader) and math.isfinite(history.train_loss[0])


def test_label_smoothing_is_the_loss_that_is_minimised():
    """With lr 0 nothing moves, so the reported loss is the loss of the initial model: with
    smoothing 0.3 it must be nn.CrossEntropyLoss(label_smoothing=0.3) of its outputs."""
    train_loader, _ = shapes_loaders(64, 8, shuffle=False, batch_size=64)
    seed_everything(0)
    model = tiny_model()
    x, y = next(iter(train_loader))
    with torch.no_grad():
        model.train()
        logits = model(x)  # BatchNorm in training mode, as in the epoch
    smoothed = nn.CrossEntropyLoss(label_smoothing=0.3)(logits, y).item()
    plain = nn.CrossEntropyLoss()(logits, y).item()
    assert abs(smoothed - plain) > 1e-3
    history = train.fit(model, train_loader, epochs=1, optimizer="sgd", lr=0.0,
                        label_smoothing=0.3, device="cpu", progress=False,
                        verbose=False)  # fmt: skip
    assert history.train_loss[0] == pytest.approx(smoothed, rel=1e-5)


def test_class_weight_weights_the_training_and_the_validation_loss():
    """With lr 0 the reported losses are those of the initial model: with class weights they
    must be the weighted cross-entropy, on the training and on the validation batches."""
    train_loader, val_loader = shapes_loaders(64, 32, shuffle=False, batch_size=64)
    seed_everything(0)
    model = tiny_model()
    weight = torch.linspace(0.2, 3.0, 8)
    x, y = next(iter(train_loader))
    with torch.no_grad():
        model.train()
        logits = model(x)
    weighted = nn.CrossEntropyLoss(weight=weight)(logits, y).item()
    assert abs(weighted - nn.CrossEntropyLoss()(logits, y).item()) > 1e-3
    history = train.fit(model, train_loader, val_loader=val_loader, epochs=1, optimizer="sgd",
                        lr=0.0, class_weight=weight, device="cpu", progress=False,
                        verbose=False)  # fmt: skip
    assert history.train_loss[0] == pytest.approx(weighted, rel=1e-5)
    model.eval()
    with torch.no_grad():
        xv, yv = next(iter(val_loader))
        expected = nn.CrossEntropyLoss(weight=weight)(model(xv), yv).item()
    assert history.val_loss[0] == pytest.approx(expected, rel=1e-5)


def test_the_epoch_hook_sees_every_epoch_and_its_numbers_are_checkpointed(tmp_path):
    train_loader, val_loader = shapes_loaders(128, 64)
    seen = []

    def hook(epoch, model, history):
        assert not isinstance(model, torch.nn.parallel.DistributedDataParallel)
        seen.append((epoch, len(history.val_acc)))
        history.extra.setdefault("clean_acc", []).append(train.evaluate(model, val_loader)[1])

    history = train.fit(tiny_model(), train_loader, val_loader=val_loader, epochs=3,
                        on_epoch_end=hook, checkpoint_dir=tmp_path, device="cpu",
                        progress=False, verbose=False)  # fmt: skip
    assert seen == [(1, 1), (2, 2), (3, 3)]
    assert history.extra["clean_acc"] == pytest.approx(history.val_acc)
    saved = torch.load(tmp_path / "last.pt", weights_only=False)["history"]
    assert saved["extra"]["clean_acc"] == history.extra["clean_acc"]


def test_custom_optimizer_and_bad_arguments():
    train_loader, _ = shapes_loaders(64, 8)
    model = tiny_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    before = [p.detach().clone() for p in model.parameters()]
    train.fit(
        model,
        train_loader,
        epochs=1,
        optimizer=optimizer,
        device="cpu",
        progress=False,
        verbose=False,
    )
    conv = next(model.parameters())
    assert torch.equal(conv, before[0]), "lr=0 from the caller's optimizer must be used"
    with pytest.raises(ValueError, match="optimizer"):
        train.fit(model, train_loader, epochs=1, optimizer="adagrad", device="cpu")
    with pytest.raises(ValueError, match="checkpoint_dir"):
        train.fit(model, train_loader, epochs=1, resume=True, device="cpu")


def test_load_or_train_trains_once_then_loads(tmp_path):
    path = tmp_path / "weights" / "model.pt"
    calls = []
    model = nn.Linear(4, 2)
    assert train.load_or_train(model, path, lambda: calls.append(1)) is False
    assert path.exists() and calls == [1]
    other = nn.Linear(4, 2)
    assert train.load_or_train(other, path, lambda: calls.append(2)) is True
    assert calls == [1]
    assert torch.equal(other.weight, model.weight)


def test_mixed_precision_and_channels_last_paths_train():
    """The CUDA defaults (autocast + channels_last) exercised on CPU with bfloat16."""
    seed_everything(0)
    train_loader, _ = shapes_loaders(512, 8)
    history = train.fit(
        models.SmallCNN(8, width=8),
        train_loader,
        epochs=3,
        lr=1e-2,
        amp=True,
        channels_last=True,
        device="cpu",
        progress=False,
        verbose=False,
    )
    assert history.train_loss[-1] < history.train_loss[0]
    assert (
        history.total_seconds == pytest.approx(sum(history.seconds)) and history.total_seconds > 0
    )
    flat = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 8))  # 2-D activations are fine
    train.fit(
        flat,
        train_loader,
        epochs=1,
        amp=True,
        channels_last=True,
        device="cpu",
        progress=False,
        verbose=False,
    )


def test_an_optimizer_factory_is_called_with_the_trainable_parameters():
    from functools import partial

    model = models.SmallCNN(3, width=4)
    for p in model.features.parameters():
        p.requires_grad_(False)
    images, labels = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8), torch.arange(8) % 3
    loader = data.TensorLoader(images, labels, batch_size=8, device="cpu")
    made = []

    def factory(params):
        made.append(torch.optim.SGD(params, lr=0.5))
        return made[-1]

    history = train.fit(model, loader, epochs=1, optimizer=factory, progress=False, verbose=False)
    assert history.lr == [0.5]
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert {id(p) for p in made[0].param_groups[0]["params"]} == trainable
    sgd = partial(torch.optim.SGD, lr=0.1)
    assert train.fit(model, loader, epochs=1, optimizer=sgd, verbose=False).lr == [0.1]


class CountingLoader:
    """A loader of ``n`` random batches that counts how many were taken from it."""

    def __init__(self, n: int, batch_size: int = 4):
        self.n, self.batch_size, self.taken = n, batch_size, 0

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        for _ in range(self.n):
            self.taken += 1
            yield torch.randn(self.batch_size, 3, 8, 8), torch.randint(0, 8, (self.batch_size,))


def test_fast_dev_run_trains_one_epoch_of_n_batches_with_a_schedule_sized_for_it(monkeypatch):
    monkeypatch.setenv("IMGCLS_FAST_DEV_RUN", "3")
    train_loader, val_loader = CountingLoader(10), CountingLoader(10)
    history = train.fit(
        tiny_model(), train_loader, val_loader=val_loader, epochs=5, lr=0.1, scheduler="onecycle",
        device="cpu", progress=False, verbose=False,
    )  # fmt: skip
    assert history.epoch == [1]
    assert (train_loader.taken, val_loader.taken) == (3, 3)
    val_loader = CountingLoader(10)
    train.evaluate(tiny_model(), val_loader)  # evaluation loops are capped too
    assert val_loader.taken == 3

    # The schedule is sized for the 3 steps that run, not for 5 epochs of 10.
    def lr_after(total_steps: int, steps: int = 3) -> float:
        optimizer = torch.optim.AdamW([nn.Parameter(torch.zeros(1))], lr=0.1)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 0.1, total_steps=total_steps)
        for _ in range(steps):
            optimizer.step()
            schedule.step()
        return optimizer.param_groups[0]["lr"]

    assert history.lr[-1] == pytest.approx(lr_after(3))
    assert history.lr[-1] != pytest.approx(lr_after(50))


def test_without_fast_dev_run_nothing_is_capped(monkeypatch):
    monkeypatch.delenv("IMGCLS_FAST_DEV_RUN", raising=False)
    train_loader = CountingLoader(4)
    history = train.fit(
        tiny_model(), train_loader, epochs=2, device="cpu", progress=False, verbose=False
    )
    assert history.epoch == [1, 2] and train_loader.taken == 8
    assert list(train.capped(range(100))) == list(range(100))
    assert train.capped_epochs(30) == 30


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_fast_dev_run_rejects_what_is_not_a_count(monkeypatch, value):
    monkeypatch.setenv("IMGCLS_FAST_DEV_RUN", value)
    with pytest.raises(ValueError, match="IMGCLS_FAST_DEV_RUN"):
        train.fast_dev_run()


def test_fit_refuses_the_test_split_as_the_loader_it_selects_on():
    """fit() keeps the best epoch on val_loader: given the test split, that would report the
    best of many test scores. Labelled test data is refused before any training step."""
    train_loader, val_loader = shapes_loaders(64, 32)
    splits = data.shapes_splits(8, 8, 8, size=32)
    test_images, test_labels = data.dataset_to_tensors(splits.test)
    held_out = {
        "a TensorLoader labelled test": data.TensorLoader(
            test_images, test_labels, split="test", device="cpu"
        ),
        "a DataLoader over a Subset of Splits.test": torch.utils.data.DataLoader(
            torch.utils.data.Subset(splits.test, [0, 1]), batch_size=2
        ),
    }
    model = tiny_model()
    before = [p.detach().clone() for p in model.parameters()]
    for what, loader in held_out.items():
        with pytest.raises(ValueError, match="val_loader is the test split"):
            train.fit(model, train_loader, val_loader=loader, epochs=1, device="cpu")
        assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True)), what
    history = train.fit(
        model, train_loader, val_loader=val_loader, epochs=1, device="cpu", verbose=False
    )
    assert history.epoch == [1] and len(history.val_acc) == 1


def test_the_loader_fit_selects_on_must_be_named():
    train_loader, val_loader = shapes_loaders(64, 32)
    with pytest.raises(TypeError):
        train.fit(tiny_model(), train_loader, val_loader, epochs=1, device="cpu")
