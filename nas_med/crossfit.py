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

from .arch import ArchSpec, build
from .arch.flip import FlipAverage
from .calibration import HeldOut
from .confirm import EPOCH_PICK_SHARE, SMALL_VAL_IMAGES, SMALL_VAL_RAREST
from .data.duplicates import find_groups, phash
from .data.splits import sample_strata, stratified_indices
from .data.types import Dataset, Split
from .errors import UserError
from .progress import emit
from .train import Normalizer, TrainConfig, pick_device, train

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
    return DEFAULT_CALIBRATION_FOLDS if small or data.info.get("pooled") else 0


def _pool(data: Dataset) -> Split:
    if data.info.get("pooled"):  # a fold ensemble's data: train already holds val
        return data.train
    return Split(torch.cat([data.train.images, data.val.images]), torch.cat([data.train.labels, data.val.labels]))


def _logits(model: torch.nn.Module, images: torch.Tensor, normalize: Normalizer, device: torch.device) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return torch.cat([model(normalize(images[i:i + 256].to(device))).float().cpu()
                          for i in range(0, len(images), 256)]).numpy().astype(np.float64)


def out_of_fold(spec: ArchSpec, data: Dataset, cfg: TrainConfig, folds: int = DEFAULT_CALIBRATION_FOLDS,
                test_flips: bool = False) -> HeldOut:
    """Logits of every pooled train + val image from the one of ``folds`` models (``cfg``'s recipe) that did not
    train on it (``test_flips``: each model averaging over horizontal flips, as the exported one does)."""
    check_calibration_folds(folds)
    pool = _pool(data)
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
        fit = pool.subset(torch.as_tensor(rest))
        learn, pick = stratified_indices(fit.labels, (1 - EPOCH_PICK_SHARE, EPOCH_PICK_SHARE), cfg.seed + k,
                                         groups[rest])
        inner = data.with_splits(train=fit.subset(torch.as_tensor(learn)), val=fit.subset(torch.as_tensor(pick)),
                                 test=pool.subset(torch.as_tensor(held)))
        fold_cfg = replace(cfg, seed=cfg.seed * 1000 + 500 + k)
        torch.manual_seed(fold_cfg.seed)
        result = train(build(spec), inner, fold_cfg)
        model = FlipAverage(result.model, "sigmoid" if data.task == "multilabel" else "softmax") \
            if test_flips else result.model
        logits[held] = _logits(model, inner.test.images, Normalizer(inner.train.images), device)
    n_groups = len(np.unique(groups))
    source = (f"out-of-fold predictions on train + val ({len(pool)} images, {folds} folds of the same recipe; "
              f"{len(pool) - n_groups} near-duplicate copies kept in their group's fold)")
    log.info("calibration: %s", source)
    return HeldOut(logits, pool.labels.numpy(), source, kind="out-of-fold")
