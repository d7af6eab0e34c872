"""Fold ensembles (as nnU-Net ships its folds): the final recipe on K stratified folds of train + val.

Member i trains on the other K-1 folds and keeps its best epoch by the loss on fold i; the K members become one
``arch.ensemble.Ensemble`` that averages their probabilities and exports like a single network. Folds are
stratified by class (``confirm.fold_indices``); where the dataset names patient groups
(``data.info['groups']`` over train + val) a group stays in one fold (``data.splits.stratified_indices``)."""
from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import torch

from .arch import ArchSpec, build
from .arch.ensemble import Ensemble
from .data.types import Dataset, Split
from .train import Normalizer, TrainConfig, TrainResult, train

__all__ = ["fold_fit", "folds_of", "pooled"]

log = logging.getLogger(__name__)


def pooled(data: Dataset) -> Dataset:
    """``data`` with train + val as its training split (val kept as is, unused by the ensemble's members)."""
    masks = None
    if data.train.masks is not None and data.val.masks is not None:
        masks = torch.cat([data.train.masks, data.val.masks])
    train_split = Split(torch.cat([data.train.images, data.val.images]), torch.cat([data.train.labels,
                                                                                 data.val.labels]), masks)
    return replace(data, train=train_split, info={**data.info, "pooled": True})


def folds_of(data: Dataset, k: int, seed: int) -> list[np.ndarray]:
    """K held-out index sets over ``data.train``, stratified, patient groups kept together where named."""
    from .confirm import fold_indices
    from .data.splits import stratified_indices

    groups = data.info.get("groups")
    if groups is not None and len(groups) == len(data.train):
        return stratified_indices(data.train.labels, tuple([1 / k] * k), seed, np.asarray(groups))
    return fold_indices(data.train.labels, k, seed)


def fold_fit(k: int):
    """A ``retrain_and_test`` trainer: ``(spec, pooled data, cfg) -> TrainResult`` holding a K-member Ensemble."""

    def fit(spec: ArchSpec, data: Dataset, cfg: TrainConfig) -> TrainResult:
        folds = folds_of(data, k, cfg.seed)
        n = len(data.train)
        members, stats, results = [], [], []
        for i, held in enumerate(folds):
            keep = np.setdiff1d(np.arange(n), held)
            member_data = replace(data, train=data.train.subset(torch.as_tensor(keep)),
                                  val=data.train.subset(torch.as_tensor(held)))
            seed = cfg.seed * 1000 + i
            log.info("fold %d/%d: %d training, %d held-out images, seed %d", i + 1, k, len(keep), len(held), seed)
            torch.manual_seed(seed)
            result = train(build(spec), member_data, replace(cfg, seed=seed))
            members.append(result.model.cpu())
            stats.append(Normalizer(member_data.train.images).to_dict())
            results.append(result)
        average = "sigmoid" if data.task == "multilabel" else "softmax"
        ensemble = Ensemble(members, average, spec.in_channels)
        ensemble.set_normalisation(Normalizer(data.train.images).to_dict(), stats)
        device = torch.device(results[0].device)
        val_aucs = [r.val.get("auc") for r in results if r.val.get("auc") is not None]
        return TrainResult(ensemble.to(device).eval(), [h for r in results for h in r.history],
                           int(np.mean([r.best_epoch for r in results])),
                           {"auc": float(np.mean(val_aucs)) if val_aucs else float("nan")},
                           float(sum(r.epoch_seconds for r in results)), results[0].device, results[0].precision,
                           False, float(sum(r.epoch_seconds_raw for r in results)))

    return fit
