"""Bootstrap intervals over test images: every seed's model scored on the same seeded resamples of the test
images (vectorised; AUC by ranks, equal to ``nas_med.metrics`` on the same images)."""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

from ..metrics import binary_decisions

__all__ = ["METRICS", "bootstrap_metrics", "interval", "nanmean", "resample_metrics"]

METRICS = ("auc", "accuracy", "sensitivity", "specificity")


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


def nanmean(x: np.ndarray, axis: int, empty: float = float("nan")) -> np.ndarray:
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
    out[:, 0] = nanmean(np.stack(aucs, 1), 1, empty=0.5)
    out[:, 2] = nanmean(np.stack(sens, 1), 1)
    out[:, 3] = nanmean(np.stack(spec, 1), 1)
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


def interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return float("nan"), float("nan")
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(samples, [tail, 100 - tail])
    return float(lo), float(hi)
