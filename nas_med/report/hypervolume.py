"""Hypervolume of four-objective results, on a normalised minimisation scale.

Each objective is turned into a loss (``-auc``, ``log10 params``, ``log10 epoch_seconds``, ``-cam_quality``),
then scaled to [0, 1] with the lowest and highest loss of a reference set of results (``Scale.fit``); the
reference point is 1.1 on every axis, so the worst result still adds volume. The hypervolume is reported as a
fraction of the reference box (1.1 ** 4), so it lies in [0, 1] and two studies are comparable when they share
one ``Scale``.

The volume itself comes from Optuna's exact WFG algorithm (``optuna._hypervolume.compute_hypervolume``, a
private function); if that import ever fails, an exact slicing algorithm written here is used instead (fine for
fronts of some tens of points).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..search.config import OBJECTIVES

__all__ = ["REFERENCE", "Scale", "hypervolume", "hypervolume_curve", "to_losses", "exact_hypervolume"]

REFERENCE = 1.1
LOG_OBJECTIVES = ("params", "epoch_seconds")
MAXIMIZED = ("auc", "cam_quality")


def to_losses(values: Sequence[Sequence[float]]) -> np.ndarray:
    """(n, 4) objective values in ``OBJECTIVES`` order -> (n, 4) losses (smaller is better, logs for costs)."""
    v = np.asarray(values, dtype=float).reshape(-1, len(OBJECTIVES))
    out = v.copy()
    for j, name in enumerate(OBJECTIVES):
        if name in LOG_OBJECTIVES:
            out[:, j] = np.log10(np.maximum(v[:, j], 1e-12))
        elif name in MAXIMIZED:
            out[:, j] = -v[:, j]
    return out


@dataclass(frozen=True)
class Scale:
    """Per-objective loss bounds mapping losses onto [0, 1]."""

    low: tuple[float, ...]
    high: tuple[float, ...]

    @classmethod
    def fit(cls, values: Sequence[Sequence[float]]) -> Scale:
        """Bounds from the results ``values`` (every study compared must be scored with the same Scale)."""
        losses = to_losses(values)
        if len(losses) == 0:
            raise ValueError("Scale.fit needs at least one result, got none.")
        return cls(tuple(losses.min(0).tolist()), tuple(losses.max(0).tolist()))

    def normalise(self, values: Sequence[Sequence[float]]) -> np.ndarray:
        """(n, 4) objective values -> (n, 4) losses in [0, inf), 0 at the best bound and 1 at the worst."""
        losses = to_losses(values)
        low, high = np.array(self.low), np.array(self.high)
        span = np.where(high - low > 1e-12, high - low, 1.0)
        return np.maximum((losses - low) / span, 0.0)  # better than the best bound counts as the best


def _non_dominated(points: np.ndarray) -> np.ndarray:
    keep = []
    for i, p in enumerate(points):
        dominated = np.any(np.all(points <= p, axis=1) & np.any(points < p, axis=1))
        if not dominated:
            keep.append(i)
    front = points[keep]
    return np.unique(front, axis=0) if len(front) else front


def exact_hypervolume(points: np.ndarray, reference: np.ndarray) -> float:
    """Exact hypervolume (minimisation) of ``points`` (n, d) below ``reference`` (d,), by slicing the last axis."""
    points = np.asarray(points, dtype=float)
    reference = np.asarray(reference, dtype=float)
    points = points[np.all(points < reference, axis=1)]
    if len(points) == 0:
        return 0.0
    if points.shape[1] == 1:
        return float(reference[0] - points[:, 0].min())
    points = _non_dominated(points)
    points = points[np.argsort(points[:, -1], kind="stable")]
    volume = 0.0
    for i in range(len(points)):
        top = points[i + 1, -1] if i + 1 < len(points) else reference[-1]
        depth = top - points[i, -1]
        if depth > 0:
            volume += depth * exact_hypervolume(points[: i + 1, :-1], reference[:-1])
    return float(volume)


def _volume(points: np.ndarray, reference: np.ndarray) -> float:
    points = points[np.all(points < reference, axis=1)]
    if len(points) == 0:
        return 0.0
    points = _non_dominated(points)
    from ..search._optuna_private import compute_hypervolume

    try:
        return compute_hypervolume(points, reference)
    except ImportError:  # pragma: no cover - private API moved (tests/search/test_optuna_private.py says so)
        return exact_hypervolume(points, reference)


def hypervolume(values: Sequence[Sequence[float]], scale: Scale) -> float:
    """Hypervolume of the results ``values`` (n, 4) as a fraction of the reference box, in [0, 1]."""
    if len(values) == 0:
        return 0.0
    reference = np.full(len(OBJECTIVES), REFERENCE)
    return _volume(scale.normalise(values), reference) / math.prod(reference)


def hypervolume_curve(values: Sequence[Sequence[float]], scale: Scale) -> list[float]:
    """The hypervolume after each of the results ``values``, taken in the given (trial) order."""
    reference = np.full(len(OBJECTIVES), REFERENCE)
    points = scale.normalise(values)
    curve, front = [], np.empty((0, len(OBJECTIVES)))
    for p in points:
        front = _non_dominated(np.vstack([front, p[None]]))
        curve.append(_volume(front, reference) / math.prod(reference))
    return curve
