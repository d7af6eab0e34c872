"""AUC as MedMNIST defines it, accuracy, sensitivity and specificity."""
from __future__ import annotations

import numpy as np
import pytest

from nas_med.metrics import accuracy, auc, sensitivity_specificity


def test_binary_auc_uses_class_one_probability():
    labels = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.35, 0.65], [0.2, 0.8]])
    assert auc("binary", labels, probs) == 1.0
    assert auc("binary", labels, probs[:, ::-1]) == 0.0


def test_multiclass_auc_is_macro_one_vs_rest():
    labels = np.array([0, 1, 2, 0, 1, 2])
    probs = np.eye(3)[labels] * 0.7 + 0.1
    assert auc("multiclass", labels, probs) == pytest.approx(1.0)
    shuffled = probs[[1, 2, 0, 4, 5, 3]]
    assert auc("multiclass", labels, shuffled) < 0.5


def test_multilabel_auc_is_mean_over_labels_and_skips_constant_labels():
    labels = np.array([[1, 0, 1], [0, 1, 1], [1, 1, 1], [0, 0, 1]])
    probs = np.array([[0.9, 0.2, 0.5], [0.1, 0.8, 0.5], [0.8, 0.3, 0.5], [0.2, 0.1, 0.5]])
    # label 0 perfect (1.0), label 1: positives 0.8, 0.3 vs negatives 0.2, 0.1 -> 1.0; label 2 constant -> skipped
    assert auc("multilabel", labels, probs) == pytest.approx(1.0)


def test_single_class_present_gives_half():
    assert auc("binary", np.array([1, 1]), np.array([[0.2, 0.8], [0.4, 0.6]])) == 0.5


def test_sensitivity_specificity_binary():
    labels = np.array([1, 1, 1, 0, 0])
    probs = np.array([[0.1, 0.9], [0.2, 0.8], [0.7, 0.3], [0.8, 0.2], [0.4, 0.6]])
    sens, spec = sensitivity_specificity("binary", labels, probs)
    assert sens == pytest.approx(2 / 3) and spec == pytest.approx(1 / 2)
    assert accuracy("binary", labels, probs) == pytest.approx(3 / 5)
