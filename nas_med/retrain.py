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
import warnings
from dataclasses import dataclass, field, fields, replace
from typing import Sequence

import numpy as np
import optuna
import torch
from torch import nn

from .arch import ArchSpec
from .data.types import Dataset
from .errors import UserError, look_up
from .final import study_recipe
from .metrics import all_metrics, binary_decisions
from .precision import PRECISIONS
from .progress import emit
from .recipe import apply_recipe
from .search import records
from .search.records import json_safe, load_study_data, seed_list, trial_name, trial_recipe
from .select import DEFAULT_AUC_TOLERANCE, DEFAULT_CAM_FLOOR, choose, completed
from .settle import settle, train_seed
from .train import Normalizer, TrainConfig, TrainResult, pick_device, predict_probs

__all__ = ["METRICS", "TestReport", "bootstrap_metrics", "on_device", "resample_metrics", "retrain_and_test",
           "retrain_study", "retrain_trial", "reuse"]

log = logging.getLogger(__name__)
METRICS = ("auc", "accuracy", "sensitivity", "specificity")


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
    settled: list = field(default_factory=list)  # the final-recipe variants tried on validation (nas_med.settle)
    model: nn.Module | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        """JSON-safe form (non-finite numbers become None; the model is left out)."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("model", "spec")}
        data["spec"] = self.spec.to_dict()
        return json_safe(data)


# ---- bootstrap -----------------------------------------------------------------------------------------------

def _columns(task: str, labels: np.ndarray, probs: np.ndarray, positive: int = 1,
             threshold: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scores, truth, decisions), each (N, J): the one-vs-rest columns ``nas_med.metrics`` scores (binary: the
    ``positive`` class's column, called at ``threshold`` or by argmax)."""
    if task == "multilabel":
        return probs, labels >= 0.5, probs >= 0.5
    k = probs.shape[1]
    if task == "binary" or k == 2:
        return (probs[:, positive:positive + 1], (labels.astype(int) == positive)[:, None],
                binary_decisions(probs, positive, threshold)[:, None])
    truth = np.eye(k, dtype=bool)[labels.astype(int)]
    pred = np.eye(k, dtype=bool)[probs.argmax(1)]
    return probs, truth, pred


def _nanmean(x: np.ndarray, axis: int, empty: float = float("nan")) -> np.ndarray:
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        out = np.nanmean(x, axis=axis)
    return np.where(np.isnan(out), empty, out)


def resample_metrics(task: str, labels: np.ndarray, probs: np.ndarray, index: np.ndarray, positive: int = 1,
                     threshold: float | None = None) -> np.ndarray:
    """(B, 4) auc, accuracy, sensitivity, specificity of each row of ``index`` (B, n) of test-image indices,
    vectorised (AUC by ranks, equal to ``nas_med.metrics`` on the same images; binary decisions at
    ``threshold`` on the ``positive`` class's probability when given)."""
    from scipy.stats import rankdata

    labels, probs = np.asarray(labels), np.asarray(probs, dtype=np.float64)
    scores, truth, pred = _columns(task, labels, probs, positive, threshold)
    n = index.shape[1]
    if task == "multilabel" or threshold is not None:
        correct = (pred == truth).mean(1)
    else:
        correct = (probs.argmax(1) == labels.astype(int)).astype(np.float64)
    out = np.empty((index.shape[0], 4))
    out[:, 1] = correct[index].mean(1)
    aucs, sens, spec = [], [], []
    with np.errstate(invalid="ignore", divide="ignore"):
        for j in range(truth.shape[1]):
            y, p = truth[index, j], pred[index, j]  # (B, n)
            pos = y.sum(1).astype(np.float64)
            neg = n - pos
            ranks = rankdata(scores[index, j], axis=1)
            auc = ((ranks * y).sum(1) - pos * (pos + 1) / 2) / (pos * neg)
            aucs.append(np.where((pos > 0) & (neg > 0), auc, np.nan))
            sens.append(np.where(pos > 0, (p & y).sum(1) / pos, np.nan))
            spec.append(np.where(neg > 0, (~p & ~y).sum(1) / neg, np.nan))
    out[:, 0] = _nanmean(np.stack(aucs, 1), 1, empty=0.5)
    out[:, 2] = _nanmean(np.stack(sens, 1), 1)
    out[:, 3] = _nanmean(np.stack(spec, 1), 1)
    return out


def bootstrap_metrics(task: str, labels: np.ndarray, probs_per_seed: Sequence[np.ndarray], n_bootstrap: int = 1000,
                      seed: int = 0, positive: int = 1, threshold: float | None = None) -> np.ndarray:
    """(S, B, 4) metrics of every seed's probabilities on the same ``n_bootstrap`` seeded resamples of test images."""
    n = len(labels)
    rng = np.random.default_rng(seed)
    index = rng.integers(0, n, size=(n_bootstrap, n))
    columns = max(1, probs_per_seed[0].shape[1])
    chunk = max(1, 4_000_000 // max(1, n * columns))
    return np.stack([np.concatenate([resample_metrics(task, labels, p, index[i:i + chunk], positive, threshold)
                                     for i in range(0, n_bootstrap, chunk)]) for p in probs_per_seed])


def _interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return float("nan"), float("nan")
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(samples, [tail, 100 - tail])
    return float(lo), float(hi)


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


def reuse(trained: dict[int, TrainResult]):
    """A ``retrain_and_test`` trainer that hands back the runs ``settle`` already made, by seed (None: train)."""
    if not trained:
        return None
    return lambda spec, data, cfg: trained.pop(cfg.seed)


def retrain_and_test(spec: ArchSpec, data: Dataset, train_config: TrainConfig | dict,
                     seeds: Sequence[int] = (0, 1, 2), n_bootstrap: int = 1000, *, name: str | None = None,
                     keep_model: bool = False, device: str | None = None, confidence: float = 0.95,
                     bootstrap_seed: int = 0, precision: str | None = None, fit=None) -> TestReport:
    """Train ``spec`` on ``data.train`` once per seed (``train_config`` with its seed replaced; the seed also sets
    the initial weights), test each model on ``data.test``, and summarise (see the module docstring).
    ``keep_model`` keeps the first seed's model in the report; ``precision`` (auto, fp32, bf16, fp16) replaces the
    config's. ``fit(spec, data, cfg) -> TrainResult`` replaces the one training run (``ensemble.fold_fit``)."""
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
    positive = data.info.get("positive")
    positive = 1 if positive is None else int(positive)
    per_seed, probs_per_seed, kept = [], [], None
    for i, seed in enumerate(seeds):
        emit("seed", i + 1, len(seeds), f"{name or spec.summary()}: seed {seed} ({i + 1} of {len(seeds)}), "
             f"{train_config.epochs} epochs", seed=seed)
        cfg = replace(train_config, seed=seed)
        log.info("retraining %s with seed %d for %d epoch(s)", name or spec.summary(), seed, cfg.epochs)
        if fit is None:
            result = train_seed(spec, data, cfg)
        else:
            torch.manual_seed(seed)  # the initial weights follow the seed too, not only the batch order
            result = fit(spec, data, cfg)
        dev = pick_device(cfg.device)
        probs = predict_probs(result.model, data.test.images.to(dev), normalize, multilabel).cpu().numpy()
        metrics = all_metrics(data.task, labels, probs, positive)
        per_seed.append({"seed": seed, **metrics, "epoch_seconds": result.epoch_seconds,
                         "best_epoch": result.best_epoch, "val_auc": result.val.get("auc"), "device": result.device})
        probs_per_seed.append(probs)
        if keep_model and kept is None:
            kept = result.model
        del result
    samples = bootstrap_metrics(data.task, labels, probs_per_seed, n_bootstrap, bootstrap_seed,
                                positive)  # (S, B, 4)
    for record, seed_samples in zip(per_seed, samples):
        record["ci"] = {m: list(_interval(seed_samples[:, i], confidence)) for i, m in enumerate(METRICS)}
    combined = _nanmean(samples, 0)  # (B, 4): the seed-averaged metric per resample
    summary: dict[str, dict[str, float]] = {}
    for i, m in enumerate(METRICS + ("epoch_seconds",)):
        values = np.array([r[m] for r in per_seed], dtype=np.float64)
        entry = {"mean": float(_nanmean(values, 0)),
                 "std": float(np.nanstd(values, ddof=1)) if np.isfinite(values).sum() > 1 else float("nan")}
        if m != "epoch_seconds":
            entry["ci_low"], entry["ci_high"] = _interval(combined[:, i], confidence)
        summary[m] = entry
    return TestReport(name or spec.summary(), spec, seeds, per_seed, summary, n_test=len(data.test),
                      n_bootstrap=n_bootstrap, confidence=confidence, train_config=train_config.to_dict(),
                      normalization=normalize.to_dict(), model=kept,
                      positive=None if data.info.get("positive") is None else data.classes[positive])


def retrain_trial(study: optuna.Study, trial_number: int | None = None, seeds: int | Sequence[int] = 3,
                  data: Dataset | None = None, n_bootstrap: int = 1000, *, device: str | None = None,
                  keep_model: bool = False, auc_tolerance: float = DEFAULT_AUC_TOLERANCE,
                  cam_floor: float | None = DEFAULT_CAM_FLOOR, prefer=None, precision: str | None = None,
                  recipe="final") -> TestReport:
    """Retrain and test trial ``trial_number`` (default: the minimalist choice under the given rule) with the
    study's final recipe (``recipe="search"``: the trial's own search config; see ``nas_med.final``).

    ``seeds``: a count K (the trial's own seed and the K-1 that follow it) or an explicit sequence of seeds.
    ``data`` defaults to the study's dataset, loaded again."""
    choice = choose(study, trial_number, auc_tolerance, cam_floor, prefer)
    trial = choice.trial
    spec, cfg = trial_recipe(trial)
    final = study_recipe(study, recipe)
    data = data if data is not None else load_study_data(study)
    cfg = on_device(apply_recipe(cfg, final), device, precision)
    seeds = seed_list(seeds, cfg.seed)
    cfg, settled, trained = settle(spec, data, cfg, final, seeds, trial_name(trial))
    report = retrain_and_test(spec, data, cfg, seeds, n_bootstrap, name=trial_name(trial), keep_model=keep_model,
                              fit=reuse(trained))
    report.trial, report.kind, report.settled = trial.number, records.kind(trial), settled
    return report


def retrain_study(study: optuna.Study, trial_number: int | None = None, seeds: int | Sequence[int] = 3,
                  data: Dataset | None = None, n_bootstrap: int = 1000, *, baselines: bool = True,
                  device: str | None = None, auc_tolerance: float = DEFAULT_AUC_TOLERANCE,
                  cam_floor: float | None = DEFAULT_CAM_FLOOR, prefer=None,
                  precision: str | None = None, recipe="final") -> list[TestReport]:
    """The chosen trial's report, then (with ``baselines``) one per completed baseline of the study, all trained
    with the same ``recipe`` and tested on the same test images with the same bootstrap resamples."""
    choice = choose(study, trial_number, auc_tolerance, cam_floor, prefer)
    data = data if data is not None else load_study_data(study)
    numbers = [choice.trial.number]
    if baselines:
        latest = {records.baseline_name(t): t.number for t in completed(study, baselines=True)}
        numbers += [n for n in latest.values() if n != choice.trial.number]
    return [retrain_trial(study, n, seeds, data, n_bootstrap, device=device, precision=precision, recipe=recipe)
            for n in numbers]
