"""Classification metrics shared by training, selection and export: AUC (MedMNIST's definition), accuracy,
sensitivity and specificity (binary: of the task's *positive* class, the one that means disease; see
``nas_med.data.positive``), per-class recall and precision and the confusion matrix."""
from __future__ import annotations

import warnings

import numpy as np
from sklearn.metrics import roc_auc_score


def auc(task: str, labels: np.ndarray, probs: np.ndarray) -> float:
    """Binary: AUC of the class-1 probability; multi-class: macro one-vs-rest; multi-label: mean per label.
    Labels with a single class present give 0.5 (undefined AUC)."""
    labels, probs = np.asarray(labels), np.asarray(probs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if task == "multilabel":
            scores = [roc_auc_score(labels[:, k], probs[:, k]) for k in range(labels.shape[1])
                      if 0 < labels[:, k].sum() < len(labels)]
            return float(np.mean(scores)) if scores else 0.5
        present = np.unique(labels)
        if len(present) < 2:
            return 0.5
        if task == "binary" or probs.shape[1] == 2:
            return float(roc_auc_score(labels, probs[:, 1]))
        if len(present) < probs.shape[1]:  # some class absent from this split: average over those present
            return float(np.mean([roc_auc_score(labels == k, probs[:, k]) for k in present]))
        return float(roc_auc_score(labels, probs, multi_class="ovr", average="macro"))


def accuracy(task: str, labels: np.ndarray, probs: np.ndarray) -> float:
    """Share of correct predictions (multi-label: of correct label decisions at 0.5)."""
    if task == "multilabel":
        return float(((probs >= 0.5) == (labels >= 0.5)).mean())
    return float((probs.argmax(1) == labels).mean())


def binary_decisions(probs: np.ndarray, positive: int = 1, threshold: float | None = None) -> np.ndarray:
    """Binary: whether each image is called positive: ``probs[:, positive] >= threshold``, or the argmax without
    a threshold."""
    if threshold is None:
        return probs.argmax(1) == positive
    return probs[:, positive] >= threshold


def decide(probs: np.ndarray, positive: int | None = None, threshold: float | None = None) -> np.ndarray:
    """The predicted class of each image: binary with a threshold, ``positive`` where ``binary_decisions`` calls
    it (else the other class); otherwise the argmax."""
    if positive is None or threshold is None:
        return probs.argmax(1)
    return np.where(binary_decisions(probs, positive, threshold), positive, 1 - positive)


def sensitivity_specificity(task: str, labels: np.ndarray, probs: np.ndarray, positive: int = 1,
                            threshold: float | None = None) -> tuple[float, float]:
    """Binary: recall of the ``positive`` class and of the other one (decisions as ``binary_decisions``).
    Otherwise macro averages of one-vs-rest recall and specificity."""
    if task == "multilabel":
        pred, truth = probs >= 0.5, labels >= 0.5
    elif task == "binary" or probs.shape[1] == 2:
        pred = binary_decisions(probs, positive, threshold)[:, None]
        truth = (np.asarray(labels).astype(int) == positive)[:, None]
    else:
        k = probs.shape[1]
        pred = np.eye(k, dtype=bool)[probs.argmax(1)]
        truth = np.eye(k, dtype=bool)[labels.astype(int)]
    sens, spec = [], []
    for j in range(truth.shape[1]):
        t, p = truth[:, j], pred[:, j]
        if t.any():
            sens.append((p & t).sum() / t.sum())
        if (~t).any():
            spec.append((~p & ~t).sum() / (~t).sum())
    return (float(np.mean(sens)) if sens else float("nan"), float(np.mean(spec)) if spec else float("nan"))


def all_metrics(task: str, labels: np.ndarray, probs: np.ndarray, positive: int = 1) -> dict[str, float]:
    """AUC, accuracy, sensitivity and specificity (binary: of class ``positive``; otherwise macro averages)."""
    sens, spec = sensitivity_specificity(task, labels, probs, positive)
    return {"auc": auc(task, labels, probs), "accuracy": accuracy(task, labels, probs),
            "sensitivity": sens, "specificity": spec}


def confusion(labels: np.ndarray, predicted: np.ndarray, k: int) -> np.ndarray:
    """(k, k) counts: row = true class, column = predicted class."""
    out = np.zeros((k, k), dtype=np.int64)
    np.add.at(out, (np.asarray(labels).astype(int), np.asarray(predicted).astype(int)), 1)
    return out


def per_class(matrix: np.ndarray) -> list[dict[str, float]]:
    """Recall, precision and support of every class from a confusion matrix (NaN where undefined)."""
    m = np.asarray(matrix, dtype=np.float64)
    rows = []
    for j in range(m.shape[0]):
        truth, called = m[j].sum(), m[:, j].sum()
        rows.append({"recall": float(m[j, j] / truth) if truth else float("nan"),
                     "precision": float(m[j, j] / called) if called else float("nan"), "support": int(truth)})
    return rows
