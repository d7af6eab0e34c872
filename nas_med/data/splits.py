"""Stratified, group-aware splits, K folds and train + val pooled, and the training-fraction subsample: the one
owner of how images are divided (``confirm``'s cross-validation and a fold ensemble's members use the same folds)."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch

from ..errors import UserError
from .types import Dataset, Split


def sample_strata(labels: torch.Tensor) -> np.ndarray:
    """One stratum id per sample: the class, or for multi-label the first positive label (-1 if none)."""
    if labels.ndim == 1:
        return labels.numpy()
    has = labels.sum(1) > 0
    return np.where(has.numpy(), labels.float().argmax(1).numpy(), -1)


def _allocate(n: int, ratios: tuple[float, ...]) -> list[int]:
    """``n`` items over ``ratios`` by largest remainder (5 at 0.7/0.15/0.15 -> 3/1/1, not 4/0/1)."""
    exact = [r * n for r in ratios]
    counts = [int(math.floor(e + 1e-9)) for e in exact]
    order = sorted(range(len(ratios)), key=lambda k: (-(exact[k] - counts[k]), k))
    for k in order[:n - sum(counts)]:
        counts[k] += 1
    return counts


def stratified_indices(labels: torch.Tensor, ratios: tuple[float, ...], seed: int,
                       groups: np.ndarray | None = None) -> list[np.ndarray]:
    """Split indices into len(ratios) parts, stratified by class; samples sharing a group stay together."""
    if not math.isclose(sum(ratios), 1.0, abs_tol=1e-6) or min(ratios) < 0:
        raise UserError(f"split ratios must be non-negative and sum to 1, got {ratios}.")
    rng = np.random.default_rng(seed)
    strata = sample_strata(labels)
    n = len(strata)
    if groups is None:
        groups = np.arange(n)
    # assign whole groups; a group's stratum is the stratum of its first sample
    uniq, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
    parts: list[list[int]] = [[] for _ in ratios]
    for stratum in np.unique(strata[first]):
        members = np.flatnonzero(strata[first] == stratum)
        members = members[rng.permutation(len(members))]
        start = 0
        for k, take in enumerate(_allocate(len(members), ratios)):
            parts[k].extend(members[start:start + take].tolist())
            start += take
    out = []
    for group_ids in parts:
        mask = np.isin(inverse, np.asarray(group_ids, dtype=int))
        out.append(np.flatnonzero(mask))
    return out


def fold_indices(labels: torch.Tensor, folds: int, seed: int, groups: torch.Tensor | np.ndarray | None = None,
                 what: str = "the number of folds") -> list[np.ndarray]:
    """K held-out index sets, stratified by class (multi-label: by the first positive label); images sharing a
    patient group stay in one fold. UserError naming ``what`` unless 2 <= K <= the images of the rarest class."""
    strata = sample_strata(labels)
    smallest = int(np.unique(strata, return_counts=True)[1].min()) if len(strata) else 0
    if folds < 2 or folds > max(2, smallest):
        raise UserError(f"{what} must be between 2 and the images of the rarest class ({smallest}), got {folds}.")
    if groups is not None:
        return stratified_indices(labels, tuple([1 / folds] * folds), seed, np.asarray(groups))
    from sklearn.model_selection import StratifiedKFold

    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [held for _, held in splitter.split(np.zeros(len(strata)), strata)]


def _cat(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
    return None if a is None or b is None else torch.cat([a, b])


def pooled(data: Dataset) -> Dataset:
    """``data`` with train + val as its training split (masks and patient groups kept where both have them; val
    and test unchanged)."""
    train, val = data.train, data.val
    split = Split(torch.cat([train.images, val.images]), torch.cat([train.labels, val.labels]),
                  _cat(train.masks, val.masks), _cat(train.groups, val.groups))
    return replace(data, train=split, info=replace(data.info, pooled=True))


def check_fraction(fraction: float) -> None:
    """Raise UserError unless ``fraction`` is in (0, 1]."""
    if not (isinstance(fraction, (int, float)) and 0 < fraction <= 1):
        raise UserError(f"--fraction must be in (0, 1], got {fraction}.")


def fraction_count(fraction: float, n: int) -> int:
    """Images kept by ``fraction`` of ``n``: rounded down, as the paper's table (3% of 348,824 -> 10,464)."""
    check_fraction(fraction)
    return int(math.floor(fraction * n + 1e-9))


def subsample_indices(labels: torch.Tensor, count: int, seed: int, what: str = "training",
                      fraction: float | None = None) -> np.ndarray:
    """Sorted indices of a stratified random subset of ``count`` samples, at least one of every class present."""
    strata = sample_strata(labels)
    classes = np.unique(strata)
    n = len(strata)
    if count < len(classes):
        via = f"--fraction {fraction} keeps" if fraction is not None else "the draw keeps"
        raise UserError(f"{via} {count} of {n} {what} images, too few to keep all {len(classes)} classes; "
                        f"raise --fraction.")
    if count >= n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    picks = []
    for c in classes:
        members = np.flatnonzero(strata == c)
        share = max(1, int(round(count * len(members) / n)))
        picks.extend(rng.choice(members, size=min(share, len(members)), replace=False).tolist())
    chosen = np.asarray(picks)
    while len(chosen) > count:  # rounding overshoot: drop from the largest class, never the last of a class
        values, counts = np.unique(strata[chosen], return_counts=True)
        big = values[np.argmax(counts)]
        chosen = np.delete(chosen, rng.choice(np.flatnonzero(strata[chosen] == big)))
    if len(chosen) < count:
        rest = np.setdiff1d(np.arange(n), chosen)
        chosen = np.concatenate([chosen, rng.choice(rest, size=count - len(chosen), replace=False)])
    return np.sort(chosen)


def subsample(split: Split, count: int, seed: int, what: str = "training", fraction: float | None = None) -> Split:
    """A stratified random subset of ``count`` images keeping at least one image of every class present."""
    index = subsample_indices(split.labels, count, seed, what, fraction)
    return split.subset(torch.as_tensor(index, dtype=torch.long))


def apply_fraction(split: Split, fraction: float, seed: int) -> Split:
    """``fraction`` of the training split (rounded down), stratified, at least one image per class."""
    check_fraction(fraction)
    if fraction == 1:
        return split
    return subsample(split, fraction_count(fraction, len(split)), seed, "training", fraction)


def parse_ratios(text: str) -> tuple[float, float, float]:
    """``"0.7,0.15,0.15"`` -> (0.7, 0.15, 0.15): train/val/test shares, non-negative, summing to 1."""
    try:
        ratios = tuple(float(v) for v in str(text).split(","))
    except ValueError:
        ratios = ()
    if len(ratios) != 3 or min(ratios) < 0 or not math.isclose(sum(ratios), 1.0, abs_tol=1e-6) or ratios[0] == 0:
        raise UserError(f"--split-ratios must be three non-negative numbers TRAIN,VAL,TEST summing to 1 "
                        f"(e.g. 0.7,0.15,0.15), got '{text}'.")
    return ratios  # type: ignore[return-value]
