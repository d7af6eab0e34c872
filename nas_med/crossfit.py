"""Out-of-fold predictions of the final recipe, where calibration can be fitted on more than the validation split.

The exported model's temperature and threshold, fitted on a validation split of a few dozen images, do not carry
over to test (RetinaMNIST: test ECE 0.067 -> 0.104 after scaling fitted on 120 images). Here the same recipe is
trained K times on K folds of train + val pooled; each image's logits come from the model that did not see it,
so all pooled images (not only the validation split) are held-out evidence of how the recipe's probabilities
behave. Folds are stratified by class and keep every group of near-duplicate images (``data.duplicates``) in one
fold, so a copy in the training folds does not make a held-out image look easy. Each fold model keeps its best
epoch by the loss on a slice of its own training part (as ``confirm`` does), never on the held-out fold.
"""
from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import torch

from .arch import ArchSpec
from .arch.flip import FlipAverage
from .calibration import HeldOut
from .confirm import EPOCH_PICK_SHARE, SMALL_VAL_IMAGES, SMALL_VAL_RAREST
from .data.duplicates import find_groups, phash
from .data.splits import pooled, sample_strata, stratified_indices
from .data.types import Dataset
from .errors import UserError
from .fit import fit
from .progress import emit
from .train import Normalizer, TrainConfig, batched_logits, pick_device

__all__ = ["DEFAULT_CALIBRATION_FOLDS", "calibration_folds_for", "check_calibration_folds", "out_of_fold"]

log = logging.getLogger(__name__)

DEFAULT_CALIBRATION_FOLDS = 5


def check_calibration_folds(folds: int) -> int:
    """``folds`` when it is 0 (the validation split) or at least 2; UserError naming it otherwise."""
    if not isinstance(folds, int) or folds == 1 or folds < 0:
        raise UserError(f"--calibration-folds must be 0 (fit on the validation split) or at least 2, got {folds}.")
    return folds


def calibration_folds_for(data: Dataset, folds: int | None) -> int:
    """``folds`` checked, or by default (None): DEFAULT_CALIBRATION_FOLDS where the validation split is small (under
    SMALL_VAL_IMAGES images or SMALL_VAL_RAREST of its rarest class, as ``confirm`` judges it) or where a fold
    ensemble trained on it; else 0 (a large validation split holds a temperature, and K more trainings cost)."""
    if folds is not None:
        return check_calibration_folds(folds)
    if data.task == "multilabel":
        return 0  # temperature only, no threshold or sets: the validation split suffices
    counts = data.class_counts()["val"]
    small = len(data.val) < SMALL_VAL_IMAGES or (min(counts) if counts else 0) < SMALL_VAL_RAREST
    return DEFAULT_CALIBRATION_FOLDS if small or data.info.pooled else 0


def out_of_fold(spec: ArchSpec, data: Dataset, cfg: TrainConfig, folds: int = DEFAULT_CALIBRATION_FOLDS,
                test_flips: bool = False) -> HeldOut:
    """Logits of every pooled train + val image from the one of ``folds`` models (``cfg``'s recipe) that did not
    train on it (``test_flips``: each model averaging over horizontal flips, as the exported one does)."""
    check_calibration_folds(folds)
    pool = data.train if data.info.pooled else pooled(data).train  # an ensemble's data holds val
    strata = sample_strata(pool.labels)
    smallest = int(np.unique(strata, return_counts=True)[1].min())
    if folds > smallest:
        raise UserError(f"--calibration-folds {folds} is more than the images of the rarest class ({smallest}) in "
                        f"train + val; use fewer folds or 0 (the validation split).")
    groups = find_groups(phash(pool.images))
    held_sets = stratified_indices(pool.labels, tuple([1 / folds] * folds), cfg.seed, groups)
    logits = np.zeros((len(pool), data.num_classes), dtype=np.float64)
    device = pick_device(cfg.device)
    for k, held in enumerate(held_sets):
        if not len(held):
            raise UserError(f"--calibration-folds {folds}: fold {k + 1} is empty (too few groups of images).")
        emit("calibration", k + 1, folds, f"calibration fold {k + 1}/{folds}: {len(pool) - len(held)} training, "
             f"{len(held)} held-out images, {cfg.epochs} epochs")
        rest = np.setdiff1d(np.arange(len(pool)), held)
        kept = pool.subset(torch.as_tensor(rest))
        learn, pick = stratified_indices(kept.labels, (1 - EPOCH_PICK_SHARE, EPOCH_PICK_SHARE), cfg.seed + k,
                                         groups[rest])
        inner = data.with_splits(train=kept.subset(torch.as_tensor(learn)), val=kept.subset(torch.as_tensor(pick)),
                                 test=pool.subset(torch.as_tensor(held)))
        fold_cfg = replace(cfg, seed=cfg.seed * 1000 + 500 + k)
        result = fit(spec, inner, fold_cfg)
        model = FlipAverage(result.model, "sigmoid" if data.task == "multilabel" else "softmax") \
            if test_flips else result.model
        held_images = inner.test.images.to(device)
        logits[held] = batched_logits(model, held_images, Normalizer(inner.train.images)).cpu().double().numpy()
    n_groups = len(np.unique(groups))
    source = (f"out-of-fold predictions on train + val ({len(pool)} images, {folds} folds of the same recipe; "
              f"{len(pool) - n_groups} near-duplicate copies kept in their group's fold)")
    log.info("calibration: %s", source)
    return HeldOut(logits, pool.labels.numpy(), source, kind="out-of-fold")
