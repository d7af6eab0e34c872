"""Stratified, group-aware splits and the training-fraction subsample."""
from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import UserError
from .types import Split


def _strata(labels: torch.Tensor) -> np.ndarray:
    """One stratum id per sample: the class, or for multi-label the first positive label (-1 if none)."""
    if labels.ndim == 1:
        return labels.numpy()
    has = labels.sum(1) > 0
    return np.where(has.numpy(), labels.float().argmax(1).numpy(), -1)


def stratified_indices(labels: torch.Tensor, ratios: tuple[float, ...], seed: int,
                       groups: np.ndarray | None = None) -> list[np.ndarray]:
    """Split indices into len(ratios) parts, stratified by class; samples sharing a group stay together."""
    if not math.isclose(sum(ratios), 1.0, abs_tol=1e-6) or min(ratios) < 0:
        raise UserError(f"split ratios must be non-negative and sum to 1, got {ratios}.")
    rng = np.random.default_rng(seed)
    strata = _strata(labels)
    n = len(strata)
    if groups is None:
        groups = np.arange(n)
    # assign whole groups; a group's stratum is the stratum of its first sample
    uniq, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
    parts: list[list[int]] = [[] for _ in ratios]
    for stratum in np.unique(strata[first]):
        members = np.flatnonzero(strata[first] == stratum)
        members = members[rng.permutation(len(members))]
        cuts = np.round(np.cumsum(ratios) * len(members)).astype(int)
        start = 0
        for k, stop in enumerate(cuts):
            parts[k].extend(members[start:stop].tolist())
            start = stop
    out = []
    for group_ids in parts:
        mask = np.isin(inverse, np.asarray(group_ids, dtype=int))
        out.append(np.flatnonzero(mask))
    return out


def subsample(split: Split, count: int, seed: int, what: str = "training") -> Split:
    """A stratified random subset of ``count`` images keeping at least one image of every class present."""
    strata = _strata(split.labels)
    classes = np.unique(strata)
    if count < len(classes):
        raise UserError(f"the {what} subset of {count} images is too small to keep all {len(classes)} classes; "
                        f"raise --fraction.")
    rng = np.random.default_rng(seed)
    n = len(strata)
    chosen = []
    for c in classes:
        members = np.flatnonzero(strata == c)
        share = max(1, int(round(count * len(members) / n)))
        chosen.extend(rng.choice(members, size=min(share, len(members)), replace=False).tolist())
    chosen = np.asarray(chosen)
    if len(chosen) > count:  # rounding overshoot: drop from the largest classes, never the last of a class
        while len(chosen) > count:
            values, counts = np.unique(strata[chosen], return_counts=True)
            big = values[np.argmax(counts)]
            drop = rng.choice(np.flatnonzero(strata[chosen] == big))
            chosen = np.delete(chosen, drop)
    elif len(chosen) < count:
        rest = np.setdiff1d(np.arange(n), chosen)
        chosen = np.concatenate([chosen, rng.choice(rest, size=count - len(chosen), replace=False)])
    return split.subset(torch.as_tensor(np.sort(chosen), dtype=torch.long))


def apply_fraction(split: Split, fraction: float, seed: int) -> Split:
    """The training fraction of the paper's protocol: ``fraction`` of the split, stratified."""
    if not 0 < fraction <= 1:
        raise UserError(f"--fraction must be in (0, 1], got {fraction}.")
    if fraction == 1:
        return split
    return subsample(split, max(1, int(round(fraction * len(split)))), seed)
