"""Calibration and the operating point of a classifier: temperature scaling, expected calibration error, the
reliability table, and the binary decision threshold (Youden's J, or a target sensitivity).

Temperature scaling (Guo et al. 2017) divides the logits by one scalar T > 0 fitted by minimising the negative
log-likelihood on held-out (validation) images; it never changes which class has the largest logit, so AUC and
argmax accuracy stay as they are while probabilities become honest. ECE: the |accuracy - confidence| gap of the
top-label prediction, averaged over equal-width confidence bins weighted by their share of images.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["ECE_BINS", "HeldOut", "apply_temperature", "ece", "fit_temperature", "reliability", "threshold_for_sensitivity",
           "youden_threshold"]

ECE_BINS = 10
THRESHOLD_DECIMALS = 4  # thresholds are stored rounded, so the figure printed is the figure used


@dataclass(frozen=True)
class HeldOut:
    """Logits (N, C) of images a model did not train on, with their labels: what temperature and threshold are
    fitted on. ``source`` says in words where they come from (for the card); ``kind`` is ``validation`` or
    ``out-of-fold``."""

    logits: np.ndarray
    labels: np.ndarray
    source: str
    kind: str = "validation"


def apply_temperature(logits: np.ndarray, temperature: float, multilabel: bool = False) -> np.ndarray:
    """Probabilities of ``logits / temperature`` (softmax, or sigmoid for multi-label)."""
    z = torch.as_tensor(np.asarray(logits, dtype=np.float64)) / float(temperature)
    return (torch.sigmoid(z) if multilabel else torch.softmax(z, 1)).numpy()


def fit_temperature(logits: np.ndarray, labels: np.ndarray, multilabel: bool = False, steps: int = 100) -> float:
    """The T > 0 minimising the NLL of ``logits / T`` on ``labels`` (LBFGS on log T; 1.0 without images)."""
    z = torch.as_tensor(np.asarray(logits, dtype=np.float64))
    if z.shape[0] < 2:
        return 1.0
    y = torch.as_tensor(np.asarray(labels))
    y = y.double() if multilabel else y.long()
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=steps, line_search_fn="strong_wolfe")

    def nll():
        opt.zero_grad()
        scaled = z / log_t.exp()
        loss = (torch.nn.functional.binary_cross_entropy_with_logits(scaled, y) if multilabel
                else torch.nn.functional.cross_entropy(scaled, y))
        loss.backward()
        return loss

    opt.step(nll)
    t = float(log_t.exp().item())
    return t if np.isfinite(t) and 1e-3 < t < 1e3 else 1.0


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> list[dict]:
    """Per equal-width confidence bin of the top-label prediction: lo, hi, count, confidence, accuracy."""
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels).astype(int)
    conf, correct = probs.max(1), (probs.argmax(1) == labels).astype(np.float64)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    rows = []
    for b in range(bins):
        sel = which == b
        n = int(sel.sum())
        rows.append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "count": n,
                     "confidence": float(conf[sel].mean()) if n else float("nan"),
                     "accuracy": float(correct[sel].mean()) if n else float("nan")})
    return rows


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error of the top-label prediction over ``bins`` equal-width bins."""
    n = len(labels)
    if n == 0:
        return float("nan")
    return float(sum(r["count"] / n * abs(r["accuracy"] - r["confidence"])
                     for r in reliability(probs, labels, bins) if r["count"]))


def _candidates(scores: np.ndarray) -> np.ndarray:
    """Thresholds between consecutive distinct scores (and beyond both ends), rounded."""
    u = np.unique(scores)
    mids = np.concatenate([[0.0], (u[:-1] + u[1:]) / 2, [1.0]]) if len(u) else np.array([0.5])
    return np.unique(np.round(mids, THRESHOLD_DECIMALS))


def _rates(scores: np.ndarray, truth: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    called = scores[None, :] >= t[:, None]
    pos, neg = truth.sum(), (~truth).sum()
    sens = (called & truth).sum(1) / max(pos, 1)
    spec = (~called & ~truth).sum(1) / max(neg, 1)
    return sens, spec


def youden_threshold(scores: np.ndarray, truth: np.ndarray) -> float:
    """The threshold on the positive-class probability (positive when ``score >= t``) that maximises Youden's
    J = sensitivity + specificity - 1; ties go to the threshold nearest 0.5."""
    scores, truth = np.asarray(scores, dtype=np.float64), np.asarray(truth, dtype=bool)
    t = _candidates(scores)
    sens, spec = _rates(scores, truth, t)
    j = sens + spec - 1
    best = np.flatnonzero(np.isclose(j, j.max()))
    return float(t[best[np.argmin(np.abs(t[best] - 0.5))]])


def threshold_for_sensitivity(scores: np.ndarray, truth: np.ndarray, target: float) -> float:
    """The highest threshold whose sensitivity is at least ``target`` (the best specificity that reaches it)."""
    scores, truth = np.asarray(scores, dtype=np.float64), np.asarray(truth, dtype=bool)
    t = _candidates(scores)
    sens, _ = _rates(scores, truth, t)
    ok = t[sens >= target - 1e-12]
    return float(ok.max()) if len(ok) else float(t.min())
