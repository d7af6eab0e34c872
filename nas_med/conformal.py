"""Split-conformal prediction sets (LAC, Sadinle, Lei and Wasserman 2019): the set of classes a clinician can act
on, holding the true class for a chosen share of images.

Scores of held-out images: ``s_i = 1 - p_i[y_i]`` (one minus the probability of the true class). For coverage
1 - alpha the threshold is the ``k``-th smallest score with ``k = ceil((n + 1)(1 - alpha))`` (infinite when
``k > n``: every class); an image's set is every class ``c`` with ``1 - p[c] <= qhat``. When the held-out images
and a new image are exchangeable, the set holds the true class with probability at least 1 - alpha (and at most
1 - alpha + 1/(n + 1) without ties; Vovk et al. 2005, Angelopoulos and Bates 2021). The sorted scores are stored
with the model, so ``predict --coverage`` recomputes the threshold for any coverage without the images.
Own implementation (a few lines; TorchCP and MAPIE pull in far more than they add here); ``tests/test_conformal.py``
checks it against the textbook rule (the k-th smallest score: ``np.quantile(scores, k / n,
method="inverted_cdf")``) and that sets cover 1 - alpha of exchangeable images.
"""
from __future__ import annotations

import math

import numpy as np

from .defaults import DEFAULT_COVERAGE
from .errors import UserError

__all__ = ["DEFAULT_COVERAGE", "check_coverage", "check_record", "coverage_report", "lac_scores", "prediction_sets", "quantile"]



def check_coverage(coverage: float) -> float:
    """``coverage`` when it is in (0, 1); UserError naming it otherwise."""
    try:
        value = float(coverage)
    except (TypeError, ValueError):
        raise UserError(f"--coverage must be a number in (0, 1), got {coverage!r}.") from None
    if not 0 < value < 1 or value != value:
        raise UserError(f"--coverage must be in (0, 1) (e.g. 0.9 for 90 %), got {coverage}.")
    return value


def check_record(record, where: str) -> None:
    """A stored ``coverage_report`` as ``predict`` needs it (finite scores, a coverage in (0, 1)); UserError."""
    ok = isinstance(record, dict) and isinstance(record.get("scores"), list)
    values = [*(record.get("scores") or []), record.get("coverage")] if ok else []
    if not ok or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                         for v in values) or not 0 < record["coverage"] < 1:
        raise UserError(f"'{where}': 'conformal' must hold a list of finite 'scores' and a 'coverage' in (0, 1).")


def lac_scores(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Nonconformity score of each held-out image: one minus the probability of its true class."""
    probs = np.asarray(probs, dtype=np.float64)
    return 1.0 - probs[np.arange(len(probs)), np.asarray(labels).astype(int)]


def quantile(scores: np.ndarray, coverage: float) -> float:
    """The conformal threshold: the ceil((n + 1) * coverage)-th smallest score (inf when that exceeds n)."""
    coverage = check_coverage(coverage)
    s = np.sort(np.asarray(scores, dtype=np.float64))
    k = math.ceil((len(s) + 1) * coverage - 1e-12)
    return float("inf") if k > len(s) or k < 1 else float(s[k - 1])


def prediction_sets(probs: np.ndarray, qhat: float) -> np.ndarray:
    """(N, C) bool: class ``c`` is in image ``i``'s set when ``1 - probs[i, c] <= qhat``."""
    return (1.0 - np.asarray(probs, dtype=np.float64)) <= qhat + 1e-12


def coverage_report(held_scores: np.ndarray, test_probs: np.ndarray, test_labels: np.ndarray, coverage: float,
                    source: str) -> dict:
    """The record stored with the model: method, coverage, threshold, the sorted held-out scores, and the
    empirical coverage and set sizes on test."""
    qhat = quantile(held_scores, coverage)
    sets = prediction_sets(test_probs, qhat)
    labels = np.asarray(test_labels).astype(int)
    sizes = sets.sum(1)
    return {"method": "LAC (split conformal, score 1 - p(true class))", "coverage": coverage,
            "qhat": qhat, "calibrated_on": source, "n_calibration": int(len(held_scores)),
            "guarantee": [coverage, min(1.0, coverage + 1 / (len(held_scores) + 1))],
            "scores": np.sort(np.asarray(held_scores, dtype=np.float64)).round(6).tolist(),
            "test": {"n": int(len(labels)), "coverage": float(sets[np.arange(len(labels)), labels].mean()),
                     "mean_set_size": float(sizes.mean()),
                     "set_sizes": {str(k): int((sizes == k).sum()) for k in range(sets.shape[1] + 1)}}}
