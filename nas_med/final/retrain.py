"""Retrain a chosen architecture with several seeds and test it.

The study stores no weights, so testing means training again: the trial's spec and training config (user attrs
``spec`` and ``train_config``, epochs included) on the study's training split, once per seed. Each seed's model is
scored on the test split (AUC, accuracy, sensitivity, specificity, as ``nas_med.metrics``); the report gives the
spread across seeds (mean +- sample std) and 95% bootstrap confidence intervals over test images: the same seeded
resamples of test images score every seed, the metric is averaged over seeds per resample, and the interval is
the 2.5th-97.5th percentile of that average (per-seed intervals are kept too).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields, replace
from typing import Sequence

import numpy as np
from torch import nn

from ..arch import ArchSpec
from ..data.types import Dataset
from ..errors import UserError, look_up
from ..fused import Run, fit_many
from ..metrics import all_metrics
from ..precision import PRECISIONS
from ..progress import emit
from ..search import records
from ..search.records import json_safe
from ..soft_targets import SoftTargets
from ..train import Normalizer, TrainConfig, TrainResult, pick_device, predict_probs
from .bootstrap import METRICS, bootstrap_metrics, interval, nanmean
from .ensemble import fold_ensemble
from .flips import FlipScores, decide_flips, flip_logits, with_flips

__all__ = ["TestReport", "on_device", "retrain_and_test"]

log = logging.getLogger(__name__)

@dataclass
class TestReport:
    """Test figures of one architecture retrained with ``seeds``.

    ``per_seed``: one dict per seed (seed, the four metrics, ``ci`` {metric: [low, high]}, epoch_seconds,
    best_epoch, val_auc). ``summary``: {metric: {mean, std, ci_low, ci_high}} for the four metrics and
    {mean, std} for epoch_seconds. ``model``: the first seed's model when asked to keep it (never serialised).
    """

    __test__ = False  # not a pytest test class

    name: str
    spec: ArchSpec
    seeds: list[int]
    per_seed: list[dict]
    summary: dict[str, dict[str, float]]
    trial: int | None = None
    kind: str = records.CANDIDATE
    n_test: int = 0
    n_bootstrap: int = 0
    confidence: float = 0.95
    train_config: dict = field(default_factory=dict)
    normalization: dict = field(default_factory=dict)
    positive: str | None = None  # binary tasks: the class whose recall is the sensitivity
    settled: list = field(default_factory=list)  # the final-recipe variants tried on validation (nas_med.final.settle)
    test_flips: dict = field(default_factory=dict)  # test-time flips and how they were chosen (nas_med.final.flips)
    distil: dict = field(default_factory=dict)  # the teacher and what its soft targets did on validation (teacher)
    model: nn.Module | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        """JSON-safe form (non-finite numbers become None; the model is left out)."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("model", "spec")}
        data["spec"] = self.spec.to_dict()
        return json_safe(data)


# ---- retraining ----------------------------------------------------------------------------------------------

def _check_fit(spec: ArchSpec, data: Dataset) -> None:
    if (spec.in_channels, spec.num_classes, spec.input_size) != (data.in_channels, data.num_classes, data.size):
        raise UserError(f"the architecture expects {spec.in_channels} channel(s), {spec.num_classes} classes at "
                        f"{spec.input_size} px but the data has {data.in_channels}, {data.num_classes} at "
                        f"{data.size} px.")


def on_device(cfg: TrainConfig, device: str | None, precision: str | None) -> TrainConfig:
    """``cfg`` with ``device`` and ``precision`` (auto, fp32, bf16, fp16) replaced where given."""
    if device is not None:
        cfg = replace(cfg, device=device)
    if precision is not None:
        cfg = replace(cfg, precision=look_up(precision, PRECISIONS, "precision"))
    return cfg


def retrain_and_test(spec: ArchSpec, data: Dataset, train_config: TrainConfig | dict,
                     seeds: Sequence[int] = (0, 1, 2), n_bootstrap: int = 1000, *, name: str | None = None,
                     keep_model: bool = False, device: str | None = None, confidence: float = 0.95,
                     bootstrap_seed: int = 0, precision: str | None = None,
                     trained: dict[int, TrainResult] | None = None, folds: int = 1,
                     test_flips: str = "off", flips_allowed: bool = True,
                     soft: SoftTargets | None = None) -> TestReport:
    """Train ``spec`` on ``data.train`` once per seed (``nas_med.fit``: the seed also sets the initial weights),
    test each model on ``data.test``, and summarise (see the module docstring). ``keep_model`` keeps the first
    seed's model in the report; ``precision`` (auto, fp32, bf16, fp16) replaces the config's. ``trained``: runs
    already made with this config (``settle``'s, by seed), used instead of training them again; ``folds`` K > 1:
    each seed's model is a K-fold ensemble on ``data.train`` (``nas_med.final.ensemble``). ``test_flips`` (auto,
    on, off): whether the models average over horizontal flips at test time (``nas_med.final.flips``, settled on
    the validation split for ``auto``; the test figures and the kept model are those of the choice). ``soft``: a
    teacher's soft targets for ``data.train`` (distillation, ``nas_med.final.teacher``)."""
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds must name at least one seed, each once; got {seeds!r}.")
    if n_bootstrap < 1:
        raise UserError(f"the number of bootstrap resamples must be at least 1, got {n_bootstrap}.")
    if not 0 < confidence < 1:
        raise UserError(f"confidence must be in (0, 1), got {confidence}.")
    if len(data.test) < 2:
        raise UserError(f"the test split of '{data.name}' has {len(data.test)} image(s); at least 2 are needed.")
    _check_fit(spec, data)
    if isinstance(train_config, dict):
        train_config = TrainConfig.from_dict(train_config)
    train_config = on_device(train_config, device, precision)
    normalize = Normalizer(data.train.images)
    multilabel = data.task == "multilabel"
    labels = data.test.labels.numpy()
    positive = data.info.positive
    positive = 1 if positive is None else int(positive)
    trained, label = dict(trained or {}), name or spec.summary()
    if folds <= 1:  # the seeds not trained yet, trained together (nas_med.fused)
        rest = [seed for seed in seeds if seed not in trained]
        runs = [Run(data, replace(train_config, seed=seed), seed, f"{label}: seed {seed}", soft=soft)
                for seed in rest]
        trained.update(zip(rest, fit_many(spec, runs)))
        fresh = set(rest)
    else:
        fresh = set()
    per_seed, probs = [], {"off": [], "on": []}
    scores = FlipScores() if test_flips == "auto" and flips_allowed and not data.info.pooled \
        and len(data.val) else None
    kept = None
    for i, seed in enumerate(seeds):
        cfg = replace(train_config, seed=seed)
        how = (f"{cfg.epochs} epochs" if seed in fresh or seed not in trained
               else "trained while settling the recipe")
        emit("seed", i + 1, len(seeds), f"{label}: seed {seed} ({i + 1} of {len(seeds)}), {how}", seed=seed)
        log.info("retraining %s with seed %d for %d epoch(s)", label, seed, cfg.epochs)
        if seed in trained:
            result = trained.pop(seed)
        else:
            result = fold_ensemble(spec, data, cfg, folds, label, soft=soft)
        dev = pick_device(cfg.device)
        plain = predict_probs(result.model, data.test.images.to(dev), normalize, multilabel).cpu().numpy()
        probs["off"].append(plain)
        if test_flips != "off" and flips_allowed:
            flipped = flip_logits(result.model, data.test.images.to(dev), normalize, data.task)[1]
            probs["on"].append((flipped.sigmoid() if multilabel else flipped.softmax(1)).numpy())
        if scores is not None:
            scores.add(result.model, data.val, normalize, data.task, positive, dev)
        per_seed.append({"seed": seed, "epoch_seconds": result.epoch_seconds, "best_epoch": result.best_epoch,
                         "val_auc": result.val.get("auc"), "device": result.device})
        if keep_model and kept is None:
            kept = result.model
        del result
    flip, flip_record = decide_flips(test_flips, scores, data, flips_allowed)
    if probs["on"]:  # recorded beside the choice, never used to make it
        per = {k: [float(all_metrics(data.task, labels, p, positive)["auc"]) for p in v] for k, v in probs.items()}
        flip_record["test_auc"] = {k: float(np.mean(v)) for k, v in per.items()}
        flip_record["test_auc_per_seed"] = per
    probs_per_seed = probs["on" if flip else "off"]
    per_seed = [{"seed": r.pop("seed"), **all_metrics(data.task, labels, p, positive), **r}
                for r, p in zip(per_seed, probs_per_seed)]
    if flip and kept is not None:
        kept = with_flips(kept, data.task)
    samples = bootstrap_metrics(data.task, labels, probs_per_seed, n_bootstrap, bootstrap_seed,
                                positive)  # (S, B, 4)
    for record, seed_samples in zip(per_seed, samples):
        record["ci"] = {m: list(interval(seed_samples[:, i], confidence)) for i, m in enumerate(METRICS)}
    combined = nanmean(samples, 0)  # (B, 4): the seed-averaged metric per resample
    summary: dict[str, dict[str, float]] = {}
    for i, m in enumerate(METRICS + ("epoch_seconds",)):
        values = np.array([r[m] for r in per_seed], dtype=np.float64)
        entry = {"mean": float(nanmean(values, 0)),
                 "std": float(np.nanstd(values, ddof=1)) if np.isfinite(values).sum() > 1 else float("nan")}
        if m != "epoch_seconds":
            entry["ci_low"], entry["ci_high"] = interval(combined[:, i], confidence)
        summary[m] = entry
    return TestReport(name or spec.summary(), spec, seeds, per_seed, summary, n_test=len(data.test),
                      n_bootstrap=n_bootstrap, confidence=confidence, train_config=train_config.to_dict(),
                      normalization=normalize.to_dict(), model=kept, test_flips=flip_record,
                      positive=None if data.info.positive is None else data.classes[positive])
