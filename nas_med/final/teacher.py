"""Distillation's teacher: the study's best front member, trained with the final recipe, and the record of
what it gave the student.

The teacher is the Pareto-front candidate of the highest validation AUC in the study (the minimalist choice itself
when it is the best: self-distillation). It trains once with the final recipe, its own seed, lr and augmentation
settled on validation as any model's (``settle``), or, for a fold ensemble (``folds`` K > 1), as a K-fold ensemble on
train + val. Its logits on the training images are the student's soft targets (``nas_med.soft_targets``); whether
they help, and at which temperature and weight, is settled on validation beside the other recipe choices."""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace

import numpy as np
import optuna
import torch
from optuna.trial import FrozenTrial

from ..arch import count_params
from ..data.splits import pooled
from ..data.types import Dataset
from ..fit import fit
from ..progress import emit
from ..search.records import trial_name, trial_recipe
from ..select import completed, pareto_front, value
from ..train import Normalizer, batched_logits, pick_device
from .ensemble import fold_ensemble
from .recipe import FinalRecipe, apply_recipe
from .settle import run_key, settle

__all__ = ["Teacher", "best_front_member", "distil_record", "train_teacher"]

log = logging.getLogger(__name__)


@dataclass
class Teacher:
    """The trained teacher: its trial, name, parameters, validation AUC in the study and after its final training,
    and its logits (N, C) on the training images (train + val for a fold ensemble's, in ``pooled`` order)."""

    trial: int
    name: str
    params: int
    study_auc: float
    final_val_auc: float
    logits: torch.Tensor
    members: int = 1
    runs: dict = field(default_factory=dict)  # its own trained runs by settle.run_key, for a student that is itself

    def on(self, data: Dataset) -> torch.Tensor:
        """The logits on ``data.train``'s images (the first rows: ``pooled`` puts train before val)."""
        return self.logits[:len(data.train)]


def best_front_member(study: optuna.Study) -> FrozenTrial:
    """The candidate on the Pareto front of the highest validation AUC (ties: the lower trial number)."""
    front = pareto_front(completed(study))
    if not front:
        from ..errors import UserError

        raise UserError(f"study '{study.study_name}' has no completed candidate to teach with.")
    return max(front, key=lambda t: (value(t, "auc"), -t.number))


def train_teacher(study: optuna.Study, data: Dataset, recipe: FinalRecipe, folds: int = 1, device: str | None = None,
                  precision: str | None = None) -> Teacher:
    """Train the study's best front member with ``recipe`` (without a teacher of its own) and keep its logits on
    the training images of ``data`` (``folds`` K > 1: a K-fold ensemble on train + val, logits on both)."""
    from .retrain import on_device

    trial = best_front_member(study)
    spec, cfg = trial_recipe(trial)
    own = replace(recipe, distil="off", folds=1)
    cfg = on_device(apply_recipe(cfg, own), device, precision)
    name = f"teacher {trial_name(trial)}"
    emit("teacher", 1, 1, f"{name}: the study's best front member (validation AUC {value(trial, 'auc'):.4f}), "
         f"trained with the final recipe for distillation")
    runs: dict = {}
    if folds > 1:
        on = pooled(data)
        result = fold_ensemble(spec, on, cfg, folds, name)
    else:
        on = data
        cfg, _, trained = settle(spec, data, cfg, own, [cfg.seed], name, done=runs)
        result = trained.get(cfg.seed)
        if result is None:  # a recipe with one variant: settle trained nothing
            result = runs[run_key(spec, cfg, cfg.seed)] = fit(spec, data, cfg, label=name)
    dev = pick_device(cfg.device)
    logits = batched_logits(result.model, on.train.images.to(dev), Normalizer(on.train.images)).cpu()
    log.info("%s: teacher trained, validation AUC %.4f", name, result.val.get("auc", float("nan")))
    return Teacher(trial.number, trial_name(trial), count_params(result.model), value(trial, "auc"),
                   float(result.val.get("auc", float("nan"))), logits, folds, runs)


def distil_record(teacher: Teacher, settled: list[dict], kept: dict) -> dict:
    """What the card says: the teacher, and the best validation loss and AUC the settled variants reached without
    and with its soft targets (``chosen``: the ``kept`` variant distils)."""
    def best(rows: list[dict]) -> dict | None:
        rows = [r for r in rows if r.get("val_loss") is not None and math.isfinite(r["val_loss"])]
        return min(rows, key=lambda r: r["val_loss"]) if rows else None

    off = best([r for r in settled if r.get("distil", "off") == "off"])
    on = best([r for r in settled if r.get("distil", "off") != "off"])
    figures = {name: {"val_loss": r["val_loss"], "val_auc": r["val_auc"], "distil": r.get("distil", "off")}
               for name, r in (("without", off), ("with", on)) if r is not None}
    return {"teacher": {"trial": teacher.trial, "name": teacher.name, "params": teacher.params,
                        "study_val_auc": teacher.study_auc, "final_val_auc": teacher.final_val_auc,
                        "members": teacher.members},
            "chosen": kept.get("distil", "off") != "off", "kept": kept.get("distil", "off"), **figures,
            "val_auc_gain": (float(np.round(on["val_auc"] - off["val_auc"], 6)) if on and off else None)}
