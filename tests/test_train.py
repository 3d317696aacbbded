"""Tests of fit(): it learns, it resumes where it stopped, and it fails clearly."""

from __future__ import annotations

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

from imgcls_helpers import data, models, synthetic, train
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
    from imgcls_helpers import data, models, synthetic, train
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
        deadline = time.time() + 60
        while time.time() < deadline:
            if last.exists() and torch.load(last, weights_only=False)["epoch"] >= 2:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the training process wrote no checkpoint within 60 s")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    saved_epoch = torch.load(last, weights_only=False)["epoch"]
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


def test_nan_loss_stops_with_the_epoch_and_step_named():
    images, labels = torch.randn(64, 3, 8, 8), torch.randint(0, 3, (64,))
    images[40] = float("nan")  # sample 40 sits in the third batch of 16
    loader = torch.utils.data.DataLoader(list(zip(images, labels, strict=True)), batch_size=16)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 3))
    with pytest.raises(train.TrainingDiverged, match=r"epoch 1, step 3"):
        train.fit(model, loader, epochs=2, device="cpu", progress=False, verbose=False)
    assert all(torch.isfinite(p).all() for p in model.parameters()), "bad step was applied"


def test_early_stopping_and_the_best_weights_are_restored(tmp_path):
    train_loader, val_loader = shapes_loaders(256, 128)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 8))  # no BatchNorm statistics
    history = train.fit(
        model,
        train_loader,
        val_loader=val_loader,
        epochs=20,
        lr=0.0,
        patience=2,
        checkpoint_dir=tmp_path,
        device="cpu",
        progress=False,
        verbose=False,
    )
    # With lr=0 nothing improves after epoch 1, so training stops after 1 + patience epochs.
    assert history.stopped_early and history.epoch == [1, 2, 3]
    assert history.best_epoch == 1
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    for name, value in model.state_dict().items():
        assert torch.equal(value, best["model"][name]), name


def test_final_model_is_the_best_epoch_by_validation_accuracy(tmp_path):
    train_loader, val_loader = shapes_loaders(256, 128)
    model = tiny_model()
    history = train.fit(
        model,
        train_loader,
        val_loader=val_loader,
        epochs=4,
        lr=3e-2,
        checkpoint_dir=tmp_path,
        device="cpu",
        progress=False,
        verbose=False,
    )
    assert history.best_val_acc == max(history.val_acc)
    _, acc = train.evaluate(model, val_loader)
    assert acc == pytest.approx(history.best_val_acc)


@pytest.mark.parametrize(
    ("scheduler", "expected"),
    [
        (
            lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5),
            [0.1, 0.05, 0.025],
        ),
        ("cosine", None),
    ],
)
def test_schedulers_change_the_learning_rate(scheduler, expected):
    train_loader, _ = shapes_loaders(128, 8)
    history = train.fit(
        tiny_model(),
        train_loader,
        epochs=3,
        optimizer="sgd",
        lr=0.1,
        scheduler=scheduler,
        device="cpu",
        progress=False,
        verbose=False,
    )
    if expected is not None:  # stepped per epoch: the lr used in each epoch
        assert history.lr == pytest.approx(expected)
    else:  # cosine is stepped per batch and ends at zero
        assert history.lr[0] < 0.1 and history.lr[-1] == pytest.approx(0.0, abs=1e-6)


def test_plateau_scheduler_needs_validation_data():
    train_loader, _ = shapes_loaders(64, 8)
    with pytest.raises(ValueError, match="val_loader"):
        train.fit(
            tiny_model(),
            train_loader,
            epochs=1,
            device="cpu",
            progress=False,
            scheduler=lambda opt: torch.optim.lr_scheduler.ReduceLROnPlateau(opt),
        )


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


def test_mixup_soft_targets_and_label_smoothing_train():
    train_loader, val_loader = shapes_loaders(256, 64)
    mixup = v2.MixUp(alpha=0.4, num_classes=8)
    history = train.fit(
        tiny_model(),
        train_loader,
        val_loader=val_loader,
        epochs=2,
        label_smoothing=0.1,
        batch_transform=mixup,
        device="cpu",
        progress=True,
        verbose=False,
    )
    assert len(history.train_acc) == 2 and 0.0 <= history.train_acc[-1] <= 1.0
    assert all(torch.isfinite(torch.tensor(history.train_loss)))


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
