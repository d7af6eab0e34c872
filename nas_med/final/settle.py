"""Settle the final recipe's open choices on validation, per model: the learning rate and augmentation policy.

A final recipe may list several values of ``lr`` or ``augment`` (the default lists ``none`` and ``light``). Which
one is best depends on the architecture as much as on the data (BreastMNIST 64 px, 3 seeds: a 25 k two-stage net
tests at 0.899 without augmentation and 0.880 with ``light``; a 26 k three-stage one at 0.863 and 0.898), so no
fixed rule by image size is right for every model. ``settle`` trains every combination with each of the seeds
that will be reported, on the training split, and keeps the combination whose best epochs have the lowest mean
validation loss (the quantity that already picks the best epoch; averaged over the seeds because one run's loss
on a few dozen validation images is too noisy to choose by; ties fall to the earlier, simpler, variant). The
kept combination's trained models are handed back, so the reported seeds are not trained twice, and the test
split plays no part in the choice.
"""
from __future__ import annotations

import logging
import math
from typing import Sequence

import numpy as np

from ..arch import ArchSpec
from ..data.types import Dataset
from ..fit import fit
from ..progress import emit
from ..train import TrainConfig, TrainResult
from .recipe import FinalRecipe, apply_recipe

__all__ = ["settle"]

log = logging.getLogger(__name__)


def settle(spec: ArchSpec, data: Dataset, cfg: TrainConfig, recipe: FinalRecipe | None, seeds: Sequence[int],
           name: str | None = None, keep: bool = True) -> tuple[TrainConfig, list[dict], dict[int, TrainResult]]:
    """(``cfg`` with the recipe's variant of lowest mean validation loss, one row per variant tried, and that
    variant's TrainResult per seed, empty without ``keep``). A row holds the variant's ``lr`` and ``augment``, the
    mean ``val_loss`` and ``val_auc`` over ``seeds``, the ``best_epochs`` and ``chosen``. ``cfg`` is a config
    ``apply_recipe(..., recipe)`` made; a recipe with one variant (or None) returns it unchanged, trains nothing."""
    variants = [] if recipe is None else recipe.variants()
    if len(variants) < 2:
        return cfg, [], {}
    label, seeds = name or spec.summary(), [int(s) for s in seeds]
    rows, kept, best_loss, step = [], {}, math.inf, 0
    for variant in variants:
        variant_cfg = apply_recipe(cfg, recipe, variant)
        results = {}
        for seed in seeds:
            step += 1
            run = f"lr {variant['lr']:g}, augment {variant['augment']}, seed {seed}"
            emit("settle", step, len(variants) * len(seeds), f"{label}: choosing the final recipe on validation, "
                 f"{run}, {variant_cfg.epochs} epochs")
            results[seed] = fit(spec, data, variant_cfg, seed, label=f"{label}: {run}")
        losses = [float(r.val.get("loss", math.inf)) for r in results.values()]
        loss = float(np.mean(losses)) if all(math.isfinite(x) for x in losses) else math.inf
        rows.append({**variant, "val_loss": loss if math.isfinite(loss) else None,
                     "val_auc": float(np.mean([r.val.get("auc", float("nan")) for r in results.values()])),
                     "best_epochs": [r.best_epoch for r in results.values()], "chosen": False})
        if loss < best_loss or not rows[:-1]:
            best_loss, best_index, kept = loss, len(rows) - 1, (results if keep else {})
        del results
    rows[best_index]["chosen"] = True
    log.info("%s: final recipe settled on validation: lr %g, augment %s", label, rows[best_index]["lr"],
             rows[best_index]["augment"])
    return apply_recipe(cfg, recipe, variants[best_index]), rows, kept
