"""Settle the final recipe's open choices on validation, per model: the learning rate and augmentation policy.

A final recipe may list several values of ``lr`` or ``augment`` (the default lists ``none`` and ``light``). Which
one is best depends on the architecture as much as on the data, so no fixed rule by image size is right for every
model (figures in benchmarks/README.md). ``settle`` chooses by the validation loss of the best epoch (the quantity
that already picks the best epoch), on the training split, the test split playing no part:

1. every combination trains once, with the first of the seeds that will be reported;
2. a combination whose mean loss is more than ``SETTLE_MARGIN`` (relative) above the best one's is clearly worse and
   dropped; while two or more stay close, they all train with the next seed (one run's loss on a few dozen
   validation images is too noisy to separate close variants), and the means are compared again;
3. the combination of lowest mean loss over the seeds it trained with is kept (ties fall to the earlier, simpler,
   variant), and its trained models are handed back, so those seeds are not trained twice.

A clear choice costs one run per variant plus the kept variant's other seeds (4 runs instead of 6 for 2 variants x 3
seeds); a close one at most every variant with every seed, as before. A round's variants train together as one
fused network (``nas_med.fused``), and so do the kept variant's remaining seeds (``retrain``).
"""
from __future__ import annotations

import logging
import math
from typing import Sequence

import numpy as np
import torch

from ..arch import ArchSpec
from ..data.types import Dataset
from ..fused import Run, fit_many
from ..progress import emit
from ..soft_targets import SoftTargets
from ..train import TrainConfig, TrainResult
from .recipe import FinalRecipe, apply_recipe, parse_distil

__all__ = ["run_key", "settle", "soft_for"]

log = logging.getLogger(__name__)


SETTLE_MARGIN = 0.03  # a variant whose mean validation loss is 3 % above the best one's is clearly worse


def settle(spec: ArchSpec, data: Dataset, cfg: TrainConfig, recipe: FinalRecipe | None, seeds: Sequence[int],
           name: str | None = None, keep: bool = True, margin: float = SETTLE_MARGIN,
           teacher: torch.Tensor | None = None, done: dict | None = None
           ) -> tuple[TrainConfig, list[dict], dict[int, TrainResult]]:
    """(``cfg`` with the recipe's variant of lowest mean validation loss, one row per variant tried, and that
    variant's TrainResult per seed it trained with, empty without ``keep``). A row holds the variant's ``lr`` and
    ``augment``, the ``seeds`` it trained with, their mean ``val_loss`` and ``val_auc``, the ``best_epochs`` and
    ``chosen``. ``cfg`` is a config ``apply_recipe(..., recipe)`` made; a recipe with one variant (or None) returns
    it unchanged, trains nothing. ``margin``: see the module docstring (0: one seed per variant; inf: every seed).
    A recipe listing ``distil`` values needs ``teacher``: the teacher's logits on ``data.train``'s images (a row
    then holds its ``distil`` too; ``soft_for`` gives the kept one's soft targets). ``done``: runs trained already,
    by ``run_key`` (a teacher's own settling, when the student is the teacher itself): reused, not trained again;
    every run without soft targets that settle trains is added to it."""
    variants = [] if recipe is None else recipe.variants()
    if len(variants) < 2:
        return cfg, [], {}
    label, seeds = name or spec.summary(), [int(s) for s in seeds]
    results: list[dict[int, TrainResult]] = [{} for _ in variants]
    close, step = list(range(len(variants))), 0
    for round_, seed in enumerate(seeds):
        planned = step + len(close) + (len(seeds) - round_ - 1)  # if this round separates them
        runs, pending = [], []
        for i in close:
            variant = variants[i]
            variant_cfg = apply_recipe(cfg, recipe, variant)
            soft = soft_for(variant, teacher, data)
            key = None if soft is not None else run_key(spec, variant_cfg, seed)
            run = f"lr {variant['lr']:g}, augment {variant['augment']}, " + (
                f"distil {variant['distil']}, " if "distil" in variant else "") + f"seed {seed}"
            if done is not None and key in done:
                results[i][seed] = done[key]
                log.info("%s: %s trained already (the teacher's run), reused", label, run)
                continue
            step += 1
            emit("settle", step, planned, f"{label}: choosing the final recipe on validation, {run}, "
                 f"{variant_cfg.epochs} epochs")
            runs.append(Run(data, variant_cfg, seed, f"{label}: {run}", soft=soft))
            pending.append((i, key))
        for (i, key), result in zip(pending, fit_many(spec, runs) if runs else []):  # trained together
            results[i][seed] = result
            if done is not None and key is not None:
                done[key] = result
        losses = {i: _mean_loss(results[i]) for i in close}
        best = min(losses.values())
        limit = math.inf if margin == math.inf else best + margin * abs(best)
        close = [i for i in close if losses[i] <= limit] if math.isfinite(best) else close[:1]
        if len(close) < 2:
            break
    best_index = min(close, key=lambda i: (_mean_loss(results[i]), i))
    rows = [{**variant, "seeds": sorted(runs), "val_loss": _finite(_mean_loss(runs)),
             "val_auc": float(np.mean([r.val.get("auc", float("nan")) for r in runs.values()])),
             "best_epochs": [r.best_epoch for r in runs.values()], "chosen": i == best_index}
            for i, (variant, runs) in enumerate(zip(variants, results))]
    log.info("%s: final recipe settled on validation: lr %g, augment %s (%d runs)", label, rows[best_index]["lr"],
             rows[best_index]["augment"], step)
    return apply_recipe(cfg, recipe, variants[best_index]), rows, (results[best_index] if keep else {})


def run_key(spec: ArchSpec, cfg: TrainConfig, seed: int) -> str:
    """What makes two runs without soft targets the same run: the architecture, the whole config and the seed."""
    return f"{spec.to_json()}|{cfg!r}|{int(seed)}"


def soft_for(variant: dict, teacher: torch.Tensor | None, data: Dataset) -> SoftTargets | None:
    """The soft targets a settled ``variant`` (or row) trains with: None without a ``distil`` value."""
    parsed = parse_distil(variant.get("distil", "off"))
    if parsed is None:
        return None
    if teacher is None or len(teacher) != len(data.train):
        raise ValueError("a distil variant needs the teacher's logits on every training image")
    return SoftTargets(teacher, parsed[0], parsed[1], data.task == "multilabel")


def _mean_loss(runs: dict[int, TrainResult]) -> float:
    """The mean validation loss of the best epochs of ``runs`` (inf if one is not finite)."""
    losses = [float(r.val.get("loss", math.inf)) for r in runs.values()]
    return float(np.mean(losses)) if losses and all(math.isfinite(x) for x in losses) else math.inf


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None
