"""What ``fit()`` costs on top of a bare training loop, and what its non-finite guard costs.

Why: every chapter after the third trains with :func:`imgcls_helpers.train.fit`, so it must
not be slower than the six lines it replaces. Five cases train the same model from the same
seed on the same batches with the same optimizer, on the CPU, and are timed side by side:

- ``bare``: zero_grad, forward, loss, backward, step over the batches;
- ``bare + sums``: also adds up the loss and the correct predictions on the device;
- ``bare + _tally``: adds them up with ``train._tally``, which also records the first
  non-finite loss (the guard); the difference to ``bare + sums`` is the guard;
- ``train_one_epoch``: the library's epoch (the guard, plus a copy of the weights at the
  start of each epoch to roll back to);
- ``fit``: the whole thing, with ``progress=False, verbose=False`` and no validation.

Before timing, one run of each must end with the same weights as ``bare``: same work.
``_tally`` is also timed on its own, per batch, since its cost is below the noise of epochs.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import nn

from imgcls_helpers import train
from imgcls_helpers.data import TensorLoader
from imgcls_helpers.models import SmallCNN

from .timing import interleaved, medians, parser, write_results

TARGET = 1.05  # fit() may cost at most 5 % more than the bare loop


def sgd(params) -> torch.optim.Optimizer:
    """The one optimizer every case uses (fit() takes it as a factory)."""
    return torch.optim.SGD(params, lr=0.05, momentum=0.9)


def bare_epoch(model: nn.Module, loader, optimizer, loss_fn, add: Callable | None) -> None:
    """The loop chapter 3 writes by hand; ``add(totals, loss, logits, y, step)`` if given."""
    totals = torch.zeros(4)
    for step, (x, y) in enumerate(loader, start=1):
        optimizer.zero_grad(set_to_none=True)
        logits = model(x)
        loss = loss_fn(logits, y)
        loss.backward()
        optimizer.step()
        if add is not None:
            add(totals, loss, logits, y, step)
    totals.tolist()  # the one read per epoch, as train_one_epoch does


def sums(totals: torch.Tensor, loss, logits, y, step: int) -> None:
    """``_tally`` without the guard: the running loss and correct counts only."""
    totals[0] += loss.detach().float() * len(y)
    totals[1] += (logits.detach().argmax(dim=1) == y).sum()
    totals[2] += len(y)


def run(case: str, images, labels, args) -> nn.Module:
    """Train a fresh, seeded model for ``args.epochs`` epochs the way ``case`` does."""
    torch.manual_seed(0)
    model = SmallCNN(10, width=args.width)
    loader = TensorLoader(images, labels, batch_size=args.batch_size, shuffle=True, device="cpu")
    if case == "fit":
        train.fit(
            model,
            loader,
            epochs=args.epochs,
            optimizer=sgd,
            device="cpu",
            progress=False,
            verbose=False,
        )
        return model
    optimizer, loss_fn = sgd(model.parameters()), nn.CrossEntropyLoss()
    model.train()
    for epoch in range(1, args.epochs + 1):
        if case == "train_one_epoch":
            train.train_one_epoch(
                model, loader, optimizer, loss_fn, device=torch.device("cpu"), epoch=epoch
            )
        else:
            add = {"bare": None, "bare + sums": sums, "bare + _tally": train._tally}[case]
            bare_epoch(model, loader, optimizer, loss_fn, add)
    return model


def tally_cost(calls: int, batch_size: int) -> dict[str, float]:
    """Microseconds per batch of ``sums`` and ``_tally`` on one batch's tensors, interleaved."""
    logits, y = torch.randn(batch_size, 10), torch.randint(0, 10, (batch_size,))
    loss, totals = nn.functional.cross_entropy(logits, y), torch.zeros(4)

    def many(add: Callable) -> None:
        for step in range(1, calls + 1):
            add(totals, loss, logits, y, step)

    seconds = interleaved({"sums": partial(many, sums), "_tally": partial(many, train._tally)}, 5)
    return {name: 1e6 * s / calls for name, s in medians(seconds).items()}


def main(argv: list[str] | None = None) -> dict:
    """Check the cases agree, time them side by side, and write the results."""
    options = parser(__doc__)
    options.add_argument("--images", type=int, default=512)
    options.add_argument("--batch-size", type=int, default=128)
    options.add_argument("--epochs", type=int, default=1)
    options.add_argument("--width", type=int, default=16, help="of SmallCNN")
    args = options.parse_args(argv)
    if args.quick:
        args.images, args.batch_size, args.epochs, args.width = 64, 32, 1, 4
    repeats = args.repeats or (2 if args.quick else 5)

    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.images, 3, 32, 32), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (args.images,), generator=generator)
    names = ["bare", "bare + sums", "bare + _tally", "train_one_epoch", "fit"]
    cases = {name: partial(run, name, images, labels, args) for name in names}

    reference = cases["bare"]().state_dict()  # also the warm-up round
    same = {}
    for name in names[1:]:
        weights = cases[name]().state_dict()
        same[name] = all(torch.equal(reference[k], weights[k]) for k in reference)
    seconds = interleaved(cases, repeats, warmup=0)
    median = medians(seconds)
    calls = 50 if args.quick else 2000
    per_batch = tally_cost(calls, args.batch_size)

    batches = args.epochs * -(-args.images // args.batch_size)
    rows = [
        {
            "case": name,
            "s_per_epoch": median[name] / args.epochs,
            "ms_per_batch": 1e3 * median[name] / batches,
            "vs_bare": median[name] / median["bare"],
            "same_weights_as_bare": same.get(name, True),
        }
        for name in names
    ]
    step_us = 1e6 * median["bare"] / batches
    summary = {
        "fit / bare": median["fit"] / median["bare"],
        "target fit / bare": TARGET,
        "within target": median["fit"] / median["bare"] <= TARGET,
        "train_one_epoch / bare": median["train_one_epoch"] / median["bare"],
        "guard: (bare + _tally) / (bare + sums)": median["bare + _tally"] / median["bare + sums"],
        "sums + guard: (bare + _tally) / bare": median["bare + _tally"] / median["bare"],
        "_tally us per batch": per_batch["_tally"],
        "sums us per batch": per_batch["sums"],
        "_tally share of a bare training step": per_batch["_tally"] / step_us,
    }
    notes = [
        f"SmallCNN(width={args.width}), {args.images} random CIFAR-shaped images in a "
        f"TensorLoader, batch size {args.batch_size}, SGD(lr=0.05, momentum=0.9), "
        f"{args.epochs} epochs per timed call; each call builds its model, so fit's set-up "
        "counts against it.",
        "The us-per-batch numbers time _tally (sums + guard) and the sums alone, on one batch's "
        f"tensors, {calls:,} calls at a time; the guard alone costs their difference.",
    ]
    settings = {
        "images": args.images,
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "width": args.width,
        "repeats": repeats,
        "quick": args.quick,
    }
    write_results(
        "fit_overhead",
        settings=settings,
        rows=rows,
        summary=summary,
        seconds=seconds,
        notes=notes,
        out=args.out,
    )
    return summary


if __name__ == "__main__":
    main()
