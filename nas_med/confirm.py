"""Confirm the minimalist choice by cross-validation before trusting a small validation split.

With a few dozen validation images, one training run's validation AUC moves by several hundredths with the
images drawn and the seed, so "within 0.01 of the best" is decided by luck and tends to favour a tiny network
that happened to score well. ``confirm`` re-scores the near-best members of the Pareto front (validation AUC
within the rule's tolerance plus one standard error of the best AUC, Hanley and McNeil 1982; at most
``max_candidates``, best first) with stratified K-fold cross-validation on the training and validation images
pooled: each candidate is trained K times with its stored recipe, and the out-of-fold predictions of all pooled
images give one AUC. The result is stored on the study (user attr ``records.CONFIRMED``), and from then on the
minimalist rule (``front``, ``export``, ``report``, ``retrain``) compares those AUCs instead.
"""
from __future__ import annotations

import logging
import math
from dataclasses import replace

import numpy as np
import optuna
import torch

from .data.splits import fold_indices, pooled, stratified_indices
from .data.types import Dataset
from .defaults import DEFAULT_FOLDS, DEFAULT_MAX_CANDIDATES
from .errors import UserError
from .fused import Run, fit_many
from .metrics import auc
from .progress import emit
from .search.records import CONFIRMED, load_study_data, trial_recipe
from .select import DEFAULT_AUC_TOLERANCE, check_rule, completed, front_numbers, pareto_front, value
from .train import Normalizer, pick_device, predict_probs

log = logging.getLogger(__name__)

EPOCH_PICK_SHARE = 0.15  # of each fold's training images, to pick the best epoch as the search does


SMALL_VAL_IMAGES, SMALL_VAL_RAREST = 200, 30


def small_validation(study: optuna.Study) -> str | None:
    """Why one validation run cannot be trusted to pick the architecture (fewer than ``SMALL_VAL_IMAGES``
    validation images or fewer than ``SMALL_VAL_RAREST`` of the rarest class), or None."""
    from .search.records import stored_config

    info = stored_config(study).get("dataset_info") or {}
    n_val = (info.get("counts") or {}).get("val")
    per_class = (info.get("class_counts") or {}).get("val") or []
    rare = min(per_class) if per_class else None
    if n_val is None:
        return None
    if n_val < SMALL_VAL_IMAGES or (rare is not None and rare < SMALL_VAL_RAREST):
        return (f"the validation split is small ({n_val} images" + ("" if rare is None else
                f", {rare} of the rarest class") + ")")
    return None


def is_confirmed(study: optuna.Study, trial_number: int) -> bool:
    """Whether ``confirm`` cross-validated ``trial_number`` (and so the rule compared cross-validated AUCs)."""
    return str(trial_number) in ((study.user_attrs.get(CONFIRMED) or {}).get("auc") or {})


def auc_standard_error(area: float, positives: int, negatives: int) -> float:
    """Hanley and McNeil's standard error of an AUC estimated from ``positives`` and ``negatives``."""
    if positives < 1 or negatives < 1:
        return float("nan")
    q1, q2 = area / (2 - area), 2 * area * area / (1 + area)
    var = (area * (1 - area) + (positives - 1) * (q1 - area * area)
           + (negatives - 1) * (q2 - area * area)) / (positives * negatives)
    return math.sqrt(max(var, 0.0))


def _smallest_class(data: Dataset) -> tuple[int, int]:
    """(images of the rarest class, the rest) in the validation split: the harder side of the AUC."""
    labels = data.val.labels
    counts = labels.sum(0) if data.task == "multilabel" else torch.bincount(labels, minlength=data.num_classes)
    rare = int(counts.min())
    return rare, len(data.val) - rare


def near_best(study: optuna.Study, data: Dataset, auc_tolerance: float = DEFAULT_AUC_TOLERANCE,
              max_candidates: int = DEFAULT_MAX_CANDIDATES) -> list[optuna.trial.FrozenTrial]:
    """Front members whose validation AUC is within ``auc_tolerance`` + one standard error of the best."""
    check_rule(auc_tolerance, None)
    front = pareto_front(completed(study))
    if not front:
        raise UserError(f"study '{study.study_name}' has no completed candidate to confirm.")
    best = max(value(t, "auc") for t in front)
    se = auc_standard_error(best, *_smallest_class(data))
    margin = auc_tolerance + (se if math.isfinite(se) else 0.0)
    near = sorted((t for t in front if value(t, "auc") >= best - margin), key=lambda t: -value(t, "auc"))
    return near[:max_candidates]


def cross_validated_auc(trial: optuna.trial.FrozenTrial, data: Dataset, folds: int = DEFAULT_FOLDS,
                        device: str | None = None) -> float:
    """AUC of the out-of-fold predictions of ``trial``'s recipe on train + val pooled, K-fold."""
    spec, cfg = trial_recipe(trial)
    if device is not None:
        cfg = replace(cfg, device=device)
    pool = pooled(data).train
    multilabel = data.task == "multilabel"
    probs = np.zeros((len(pool), data.num_classes), dtype=np.float64)
    dev = pick_device(cfg.device)
    helds, runs = fold_indices(pool.labels, folds, cfg.seed, pool.groups, "--cv-folds"), []
    for k, held in enumerate(helds):
        emit("fold", k + 1, folds, f"trial {trial.number} fold {k + 1}/{folds}", trial=trial.number)
        rest = np.setdiff1d(np.arange(len(pool)), held)
        part, out = pool.subset(torch.as_tensor(rest)), pool.subset(torch.as_tensor(held))
        # the best epoch is picked on a slice of the fold's own training part, never on the held-out fold
        learn, pick = stratified_indices(part.labels, (1 - EPOCH_PICK_SHARE, EPOCH_PICK_SHARE), cfg.seed + k,
                                         None if part.groups is None else part.groups.numpy())
        inner = data.with_splits(train=part.subset(torch.as_tensor(learn)), val=part.subset(torch.as_tensor(pick)),
                                 test=out)
        runs.append(Run(inner, cfg, cfg.seed + k, f"trial {trial.number} fold {k + 1}/{folds}"))
    for held, run, result in zip(helds, runs, fit_many(spec, runs)):  # the folds trained together
        normalize = Normalizer(run.data.train.images)
        probs[held] = predict_probs(result.model, run.data.test.images.to(dev), normalize,
                                    multilabel).cpu().numpy()
    return auc(data.task, pool.labels.numpy(), probs)


def confirm(study: optuna.Study, data: Dataset | None = None, folds: int = DEFAULT_FOLDS,
            auc_tolerance: float = DEFAULT_AUC_TOLERANCE, max_candidates: int = DEFAULT_MAX_CANDIDATES,
            device: str | None = None) -> dict[int, float]:
    """Cross-validate the near-best front members of ``study`` and store their AUCs on it; returns
    {trial number: cross-validated AUC}."""
    data = data if data is not None else load_study_data(study)
    if data.info.group_key and data.train.groups is None:
        raise UserError(f"study '{study.study_name}' groups images by '{data.info.group_key}' but its data "
                        "carries no patient groups; confirm's folds would put one patient on both sides.")
    aucs = {}
    candidates = near_best(study, data, auc_tolerance, max_candidates)
    for i, trial in enumerate(candidates):
        emit("confirm", i + 1, len(candidates), f"trial {trial.number} ({i + 1} of {len(candidates)}), "
             f"{folds} folds", trial=trial.number, folds=folds)
        aucs[trial.number] = cross_validated_auc(trial, data, folds, device)
        emit("confirmed", i + 1, len(candidates), f"trial {trial.number}: {folds}-fold cross-validated AUC "
             f"{aucs[trial.number]:.4f}", trial=trial.number, auc=aucs[trial.number])
        log.info("trial %d: validation AUC %.4f, %d-fold cross-validated AUC %.4f", trial.number,
                 value(trial, "auc"), folds, aucs[trial.number])
    study.set_user_attr(CONFIRMED, {"folds": folds, "front": front_numbers(study),
                                    "auc": {str(n): a for n, a in aucs.items()}})
    return aucs
