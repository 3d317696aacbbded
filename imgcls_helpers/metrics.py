"""Predictions over a loader and the accuracy measures every chapter reports.

Heavier reports (precision/recall, confusion matrices, ROC) come from scikit-learn, which is
well tested; this module only gathers what the model predicts and turns it into the arrays
scikit-learn expects.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class Predictions:
    """Everything a model said about a dataset, on the CPU, in loader order."""

    logits: torch.Tensor  # (N, C)
    targets: torch.Tensor  # (N,)

    @property
    def probs(self) -> torch.Tensor:
        return self.logits.softmax(dim=1)

    @property
    def preds(self) -> torch.Tensor:
        return self.logits.argmax(dim=1)


@torch.no_grad()
def predict(model: nn.Module, loader, device: torch.device | str | None = None) -> Predictions:
    """Run ``model`` in eval mode over ``loader`` and collect logits and targets.

    The model's train/eval mode is put back afterwards, so this is safe inside a training loop.
    """
    device = torch.device(device) if device else next(model.parameters()).device
    was_training = model.training
    model.eval()
    logits, targets = [], []
    for x, y in loader:
        logits.append(model(x.to(device)).float().cpu())
        targets.append(torch.as_tensor(y).cpu())
    model.train(was_training)
    return Predictions(torch.cat(logits), torch.cat(targets).long())


def accuracy(logits_or_preds: torch.Tensor, targets: torch.Tensor) -> float:
    """Fraction correct; accepts class scores (N, C) or predicted labels (N,)."""
    preds = logits_or_preds.argmax(dim=1) if logits_or_preds.ndim == 2 else logits_or_preds
    if len(preds) != len(targets):
        raise ValueError(f"{len(preds)} predictions but {len(targets)} targets")
    return (preds.cpu() == targets.cpu()).float().mean().item()


def topk_accuracy(
    logits: torch.Tensor, targets: torch.Tensor, ks: tuple[int, ...] = (1, 5)
) -> dict[int, float]:
    """Fraction of samples whose true class is among the ``k`` highest scores, for each k."""
    if max(ks) > logits.shape[1]:
        raise ValueError(f"k={max(ks)} is more than the {logits.shape[1]} classes")
    top = logits.topk(max(ks), dim=1).indices.cpu()
    hit = top == targets.cpu().view(-1, 1)
    return {k: hit[:, :k].any(dim=1).float().mean().item() for k in ks}
