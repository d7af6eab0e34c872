"""The optimiser and learning-rate schedule of one training run (``TrainConfig.optimizer/schedule/warmup``).

``constant`` (the search recipe: no scheduler at all, so studies made before schedules existed train exactly as
before) or ``cosine``: linear warm-up from ~0 over the first ``warmup`` share of all steps, then cosine decay to
0 at the last step. Stepped once per training step."""
from __future__ import annotations

import math

import torch

from .errors import UserError

__all__ = ["OPTIMIZERS", "SCHEDULES", "lr_factor", "make_optimizer", "make_scheduler"]

OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("constant", "cosine")


def make_optimizer(params, name: str, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise UserError(f"unknown optimizer '{name}' (valid: {', '.join(OPTIMIZERS)}).")


def lr_factor(step: int, total: int, schedule: str, warmup: float) -> float:
    """The multiplier of the base learning rate at ``step`` (0-based) of ``total`` steps."""
    if schedule == "constant":
        return 1.0
    if schedule != "cosine":
        raise UserError(f"unknown schedule '{schedule}' (valid: {', '.join(SCHEDULES)}).")
    if not 0 <= warmup < 1:
        raise UserError(f"warmup must be a share of the steps in [0, 1), got {warmup}.")
    total = max(1, total)
    warm = int(round(warmup * total))
    if step < warm:
        return (step + 1) / warm
    span = max(1, total - warm)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / span)))


def make_scheduler(optimizer: torch.optim.Optimizer, schedule: str, warmup: float,
                   total_steps: int) -> torch.optim.lr_scheduler.LambdaLR | None:
    """None for ``constant`` (the optimiser is left untouched), else a per-step LambdaLR."""
    lr_factor(0, total_steps, schedule, warmup)  # validates the names and the warm-up share
    if schedule == "constant":
        return None
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total_steps, schedule, warmup))
