"""Stratified splits, the training fraction and split-ratio parsing."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nas_med.data import load_dataset
from nas_med.data.splits import (
    apply_fraction,
    fold_indices,
    fraction_count,
    parse_ratios,
    pooled,
    stratified_indices,
    subsample,
)
from nas_med.data.types import Split
from nas_med.errors import UserError


def _split(counts: list[int]) -> Split:
    labels = torch.cat([torch.full((n,), k) for k, n in enumerate(counts)])
    return Split(torch.zeros(len(labels), 1, 4, 4, dtype=torch.uint8), labels)


def test_breastmnist_half_fraction(breast_dir):
    full = load_dataset("breastmnist", data_root=breast_dir)
    half = load_dataset("breastmnist", data_root=breast_dir, fraction=0.5)
    assert len(half.train) == 273
    for got, whole in zip(half.class_counts()["train"], full.class_counts()["train"]):
        assert abs(got - whole / 2) <= 1
    assert len(half.val) == 78 and len(half.test) == 156  # only training is subsampled


@pytest.mark.parametrize("fraction", [0.5, 0.1, 0.03])
def test_fraction_is_stratified_and_keeps_every_class(fraction):
    split = _split([500, 60, 3])
    sub = apply_fraction(split, fraction, seed=1)
    assert len(sub) == fraction_count(fraction, 563)
    counts = torch.bincount(sub.labels, minlength=3).tolist()
    assert min(counts) >= 1
    assert abs(counts[0] - fraction * 500) <= 2


def test_fraction_is_seeded():
    split = _split([50, 50])
    split.images = torch.arange(100, dtype=torch.uint8).view(100, 1, 1, 1)
    a, b, c = (apply_fraction(split, 0.3, seed) for seed in (1, 1, 2))
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)


@pytest.mark.parametrize("fraction", [0, -0.1, 1.01, float("nan")])
def test_fraction_out_of_range(fraction):
    with pytest.raises(UserError, match="--fraction must be in"):
        apply_fraction(_split([5, 5]), fraction, 0)


def test_fraction_too_small_for_every_class():
    with pytest.raises(UserError, match=r"--fraction 0.01 keeps 1 of 150 training images.*all 3 classes"):
        apply_fraction(_split([100, 30, 20]), 0.01, 0)


def test_subsample_never_drops_a_class():
    sub = subsample(_split([97, 1, 1, 1]), 4, seed=0)
    assert torch.bincount(sub.labels).tolist() == [1, 1, 1, 1]


def test_stratified_indices_groups_stay_together():
    labels = torch.tensor([0] * 40 + [1] * 40)
    groups = np.repeat(np.arange(20), 4)
    parts = stratified_indices(labels, (0.6, 0.2, 0.2), seed=0, groups=groups)
    assert sorted(np.concatenate(parts).tolist()) == list(range(80))
    owners = [set(groups[p].tolist()) for p in parts]
    assert not owners[0] & owners[1] and not owners[0] & owners[2] and not owners[1] & owners[2]


def test_folds_keep_a_patient_group_in_one_fold_and_pooling_keeps_the_groups():
    labels = torch.tensor([0] * 40 + [1] * 40)
    groups = torch.as_tensor(np.repeat(np.arange(20), 4))
    folds = fold_indices(labels, 4, seed=1, groups=groups)
    assert sorted(np.concatenate(folds).tolist()) == list(range(80))
    owners = [set(groups[f].tolist()) for f in folds]
    assert all(not owners[i] & owners[j] for i in range(4) for j in range(i + 1, 4))
    # stratified: the 10 groups of each class spread 2 or 3 to a fold (8 or 12 images)
    assert all(int(labels[f].sum()) in (8, 12) and int((1 - labels[f]).sum()) in (8, 12) for f in folds)
    with pytest.raises(UserError, match="--ensemble must be between 2 and the images of the rarest class"):
        fold_indices(labels, 1, seed=0, groups=groups, what="--ensemble")
    data = load_dataset("synthetic", size=16)
    data = data.with_splits(train=Split(data.train.images, data.train.labels, groups=torch.arange(len(data.train))),
                            val=Split(data.val.images, data.val.labels, groups=-1 - torch.arange(len(data.val))))
    both = pooled(data)
    assert len(both.train) == len(data.train) + len(data.val) and both.val is data.val and both.info.pooled
    assert torch.equal(both.train.groups[len(data.train):], data.val.groups)
    assert torch.equal(both.train.subset(torch.tensor([0, len(data.train)])).groups, torch.tensor([0, -1]))


@pytest.mark.parametrize("text,expected", [("0.7,0.15,0.15", (0.7, 0.15, 0.15)), ("0.8, 0.2, 0", (0.8, 0.2, 0.0))])
def test_parse_ratios(text, expected):
    assert parse_ratios(text) == expected


@pytest.mark.parametrize("text", ["0.5,0.5", "0.5,0.5,0.5", "a,b,c", "0,0.5,0.5", "1.2,-0.1,-0.1"])
def test_parse_ratios_rejects(text):
    with pytest.raises(UserError, match=f"got '{text}'"):
        parse_ratios(text)
