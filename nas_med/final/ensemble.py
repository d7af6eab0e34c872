"""Fold ensembles (as nnU-Net ships its folds): the final recipe on K stratified folds of train + val.

Member i trains on the other K-1 folds and keeps its best epoch by the loss on fold i; the K members become one
``arch.ensemble.Ensemble`` that averages their probabilities and exports like a single network. The folds are
``data.splits.fold_indices``: stratified by class, a patient group (``Split.groups``) kept in one fold."""
from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import torch

from ..arch import ArchSpec
from ..arch.ensemble import Ensemble
from ..data.splits import fold_indices
from ..data.types import Dataset
from ..fused import Run, fit_many
from ..progress import emit
from ..soft_targets import SoftTargets
from ..train import Normalizer, TrainConfig, TrainResult

__all__ = ["fold_ensemble"]

log = logging.getLogger(__name__)


def fold_ensemble(spec: ArchSpec, data: Dataset, cfg: TrainConfig, k: int, name: str | None = None,
                  soft: SoftTargets | None = None) -> TrainResult:
    """A TrainResult holding a K-member Ensemble trained on ``data.train`` (train + val pooled,
    ``data.splits.pooled``); member i's seed is ``cfg.seed * 1000 + i``; ``soft``: a teacher's soft targets for
    ``data.train`` (each member distils on its own rows)."""
    folds = fold_indices(data.train.labels, k, cfg.seed, data.train.groups, "--ensemble")
    n = len(data.train)
    label = name or spec.summary()
    runs = []
    for i, held in enumerate(folds):
        keep = np.setdiff1d(np.arange(n), held)
        member_data = replace(data, train=data.train.subset(torch.as_tensor(keep)),
                              val=data.train.subset(torch.as_tensor(held)))
        seed = cfg.seed * 1000 + i
        log.info("fold %d/%d: %d training, %d held-out images, seed %d", i + 1, k, len(keep), len(held), seed)
        emit("member", i + 1, k, f"{label}: ensemble member {i + 1} of {k} ({len(keep)} training, {len(held)} "
             f"held-out images), seed {seed}, {cfg.epochs} epochs", seed=seed)
        runs.append(Run(member_data, cfg, seed, f"{label}: member {i + 1} of {k}",
                        soft=None if soft is None else soft.subset(torch.as_tensor(keep))))
    results = fit_many(spec, runs)  # the members trained together (nas_med.fused)
    members = [r.model.cpu() for r in results]
    stats = [Normalizer(run.data.train.images).to_dict() for run in runs]
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
