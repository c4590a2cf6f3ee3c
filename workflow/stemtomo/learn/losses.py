"""Segmentation losses for heavily unbalanced classes; label 255 is ignored everywhere.

- dice_ce (default): soft Dice over classes + cross-entropy (as nnU-Net).
- focal: focal loss (Lin et al., ICCV 2017), γ and per-class weights (the study: γ=1,
  weights [0.2, 0.3, 0.5]).
- weighted_ce: class-weighted cross-entropy.
- tversky: Tversky loss (Salehi et al., 2017), α weighs false positives, β false negatives.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..core.labels import IGNORE


def _valid(target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    valid = target != IGNORE
    return valid, torch.where(valid, target, torch.zeros_like(target))


def soft_dice(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1e-5) -> torch.Tensor:
    """Per-class soft Dice (classes,) over labelled pixels of the batch."""
    valid, t = _valid(target)
    prob = torch.softmax(logits, dim=1) * valid[:, None]
    onehot = F.one_hot(t.long(), logits.shape[1]).permute(0, 3, 1, 2).to(prob.dtype) * valid[:, None]
    dims = (0, 2, 3)
    inter = (prob * onehot).sum(dims)
    return (2 * inter + smooth) / (prob.sum(dims) + onehot.sum(dims) + smooth)


def dice_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    ce = F.cross_entropy(logits, target.long(), ignore_index=IGNORE)
    return ce + (1 - soft_dice(logits, target).mean())


def weighted_ce(logits: torch.Tensor, target: torch.Tensor, weights: list[float]) -> torch.Tensor:
    w = torch.as_tensor(weights, dtype=logits.dtype, device=logits.device)
    return F.cross_entropy(logits, target.long(), weight=w, ignore_index=IGNORE)


def focal(logits: torch.Tensor, target: torch.Tensor, gamma: float = 1.0,
          weights: list[float] | None = None) -> torch.Tensor:
    valid, t = _valid(target)
    logp = torch.log_softmax(logits, dim=1).gather(1, t.long()[:, None])[:, 0]
    loss = -((1 - logp.exp()) ** gamma) * logp
    if weights is not None:
        loss = loss * torch.as_tensor(weights, dtype=logits.dtype, device=logits.device)[t.long()]
    return (loss * valid).sum() / valid.sum().clamp(min=1)


def tversky(logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.3,
            beta: float = 0.7, smooth: float = 1e-5) -> torch.Tensor:
    valid, t = _valid(target)
    prob = torch.softmax(logits, dim=1) * valid[:, None]
    onehot = F.one_hot(t.long(), logits.shape[1]).permute(0, 3, 1, 2).to(prob.dtype) * valid[:, None]
    dims = (0, 2, 3)
    tp = (prob * onehot).sum(dims)
    fp = (prob * (1 - onehot)).sum(dims)
    fn = ((1 - prob) * onehot).sum(dims)
    return 1 - ((tp + smooth) / (tp + alpha * fp + beta * fn + smooth)).mean()


def make_loss(name: str, **options):
    """A loss function by config name: dice_ce, focal, weighted_ce or tversky."""
    table = {"dice_ce": dice_ce, "focal": focal, "weighted_ce": weighted_ce, "tversky": tversky}
    if name not in table:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(table)}")
    return lambda logits, target: table[name](logits, target, **options)
