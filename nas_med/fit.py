"""One seeded training run of an architecture: seed, build, train. The only place that does the three together
(confirm's folds, settling, the reported seeds and a fold ensemble's members all call ``fit``; the search
objective builds with ``seeded_build`` because it checks the memory estimate between the build and the training).

``torch.manual_seed(seed)`` before ``build(spec)`` makes the initial weights follow the seed, not only the batch
order, so a run repeats exactly. With a ``label``, ``fit`` tells the progress listeners (``nas_med.progress``)
about the run's start and every epoch (stage ``run``: epoch k of E, k = 0 at the start, the validation loss) and
its end (stage ``fitted``: the best epoch and its validation loss and AUC)."""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

import torch
from torch import nn

from .arch import ArchSpec, build
from .data.types import Dataset
from .progress import emit
from .soft_targets import SoftTargets
from .train import TrainConfig, TrainResult, train

__all__ = ["fit", "seeded_build"]


def seeded_build(spec: ArchSpec, seed: int) -> nn.Module:
    """``build(spec)`` with the initial weights drawn from ``seed``."""
    torch.manual_seed(int(seed))
    return build(spec)


def fit(spec: ArchSpec, data: Dataset, cfg: TrainConfig, seed: int | None = None, *, label: str | None = None,
        on_epoch: Callable[[int, dict], None] | None = None, soft: SoftTargets | None = None) -> TrainResult:
    """Train ``spec`` on ``data`` with ``cfg`` (its seed replaced by ``seed`` when given); the seed sets the initial
    weights and the batch order. ``label`` names the run in progress events (none without it); ``soft``: a teacher's
    soft targets for ``data.train`` (distillation, ``nas_med.soft_targets``)."""
    cfg = cfg if seed is None else replace(cfg, seed=int(seed))
    model = seeded_build(spec, cfg.seed)
    if label is None:
        return train(model, data, cfg, on_epoch=on_epoch, soft=soft)

    def epoch_done(epoch: int, record: dict) -> None:
        emit("run", epoch + 1, cfg.epochs, label, val_loss=record["val_loss"], val_auc=record["val_auc"])
        if on_epoch is not None:
            on_epoch(epoch, record)

    emit("run", 0, cfg.epochs, label)
    result = train(model, data, cfg, on_epoch=epoch_done, soft=soft)
    emit("fitted", result.best_epoch + 1, len(result.history), label, val_loss=result.val.get("loss"),
         val_auc=result.val.get("auc"), epochs=cfg.epochs)
    return result
