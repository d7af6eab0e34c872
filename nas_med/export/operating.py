"""The exported model's operating point: temperature scaling, (binary) the decision threshold and conformal
prediction sets, fitted on held-out predictions (out-of-fold predictions of the same recipe, else the validation
split), then the test figures at that point: sensitivity and specificity of the positive class with bootstrap
intervals, the confusion matrix, per-class recall and precision, ECE before and after (and whether scaling helped),
empirical set coverage, and a reliability diagram. Written to ``operating_point.json`` and ``reliability.png``;
``predict`` applies them.

Every figure is of the exported model (the first seed) on CPU, with the same normalisation and arithmetic as
``predict``, so a reader who runs ``predict`` on the test images recomputes the card's sensitivity exactly.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..calibration import (
    HeldOut,
    apply_temperature,
    ece,
    fit_temperature,
    reliability,
    threshold_for_sensitivity,
    youden_threshold,
)
from ..conformal import DEFAULT_COVERAGE, coverage_report, lac_scores
from ..data.types import Dataset
from ..errors import UserError
from ..final.bootstrap import bootstrap_metrics, interval
from ..metrics import confusion, decide, per_class, sensitivity_specificity
from ..train import Normalizer, batched_logits

__all__ = ["OPERATING_FILE", "RELIABILITY_FILE", "operating_point", "reliability_figure"]

OPERATING_FILE = "operating_point.json"
RELIABILITY_FILE = "reliability.png"


def _logits(model: nn.Module, images: torch.Tensor, pre: dict) -> np.ndarray:
    return batched_logits(model, images, Normalizer(stats=pre)).cpu().numpy()


def _check_target(target: float | None) -> None:
    if target is not None and not 0 < target <= 1:
        raise UserError(f"--target-sensitivity must be in (0, 1], got {target}.")


def operating_point(model: nn.Module, data: Dataset, pre: dict, *, target_sensitivity: float | None = None,
                    n_bootstrap: int = 1000, confidence: float = 0.95, held_out: HeldOut | None = None,
                    coverage: float = DEFAULT_COVERAGE) -> tuple[dict, dict]:
    """(record for operating_point.json, arrays {probs, predicted} of the test images at the operating point).

    Temperature, threshold and the conformal prediction sets are fitted on ``held_out`` (out-of-fold predictions
    of the same recipe, ``crossfit.out_of_fold``) when given, else on the exported model's validation split."""
    _check_target(target_sensitivity)
    multilabel = data.task == "multilabel"
    val_logits, test_logits = _logits(model, data.val.images, pre), _logits(model, data.test.images, pre)
    y_val, y_test = data.val.labels.numpy(), data.test.labels.numpy()
    if held_out is None:
        in_sample = " (the ensemble trained on them: in-sample)" if data.info.pooled else ""
        held_out = HeldOut(val_logits, y_val, f"the validation split ({len(y_val)} images){in_sample}")
    temperature = fit_temperature(held_out.logits, held_out.labels, multilabel)
    record: dict = {"temperature": temperature, "probabilities": "softmax(logits / temperature)" if not multilabel
                    else "sigmoid(logits / temperature)", "fitted_on": held_out.source,
                    "calibration_source": held_out.kind, "n_fit": int(len(held_out.labels)),
                    "class_names": list(data.classes), "task": data.task}
    probs = {(s, c): apply_temperature(lg, temperature if c else 1.0, multilabel)
             for s, lg in (("val", val_logits), ("test", test_logits), ("fit", held_out.logits)) for c in (False, True)}
    if multilabel:
        record.update(positive_class=None, positive_index=None, threshold=None, rule="0.5 per label")
        return record, {"probs": probs[("test", True)], "predicted": None}
    truth = {"val": y_val, "test": y_test, "fit": held_out.labels}
    record["ece"] = {f"{s}_{'after' if c else 'before'}": ece(probs[(s, c)], truth[s]) for (s, c) in probs}
    record["scaling_helped_on_test"] = bool(record["ece"]["test_after"] <= record["ece"]["test_before"])
    record["reliability_test"] = {"before": reliability(probs[("test", False)], y_test),
                                  "after": reliability(probs[("test", True)], y_test)}
    record["conformal"] = coverage_report(lac_scores(probs[("fit", True)], held_out.labels), probs[("test", True)],
                                          y_test, coverage, held_out.source)
    positive = data.info.positive
    threshold = None
    if positive is not None:
        positive = int(positive)
        scores, truth = probs[("fit", True)][:, positive], held_out.labels == positive
        if target_sensitivity is None:
            threshold, rule = youden_threshold(scores, truth), "Youden's J (max sensitivity + specificity - 1)"
        else:
            threshold = threshold_for_sensitivity(scores, truth, target_sensitivity)
            rule = f"highest threshold with held-out sensitivity >= {target_sensitivity:g}"
        sens, spec = sensitivity_specificity("binary", y_val, probs[("val", True)], positive, threshold)
        fit_sens, fit_spec = sensitivity_specificity("binary", held_out.labels, probs[("fit", True)], positive,
                                                     threshold)
        record.update(rule=rule, target_sensitivity=target_sensitivity,
                      validation={"sensitivity": sens, "specificity": spec},
                      held_out={"sensitivity": fit_sens, "specificity": fit_spec})
    else:
        record["rule"] = "argmax"
    record.update(positive_class=None if positive is None else data.classes[positive], positive_index=positive,
                  threshold=threshold, decision="positive when p(positive) >= threshold" if positive is not None
                  else "the class of highest probability")
    test = probs[("test", True)]
    predicted = decide(test, positive, threshold)
    matrix = confusion(y_test, predicted, data.num_classes)
    record["test"] = {"n": int(len(y_test)), "confusion": matrix.tolist(), "per_class": per_class(matrix),
                      "accuracy": float((predicted == y_test).mean())}
    if positive is not None:
        sens, spec = sensitivity_specificity("binary", y_test, test, positive, threshold)
        samples = bootstrap_metrics("binary", y_test, [test], n_bootstrap, 0, positive, threshold)[0]
        pos = int((y_test == positive).sum())
        record["test"].update(
            sensitivity=sens, specificity=spec, true_positives=int(matrix[positive, positive]), positives=pos,
            true_negatives=int(matrix[1 - positive, 1 - positive]), negatives=int(len(y_test) - pos),
            ci={m: list(interval(samples[:, i], confidence)) for i, m in
                ((1, "accuracy"), (2, "sensitivity"), (3, "specificity"))}, confidence=confidence)
    return record, {"probs": test, "predicted": predicted}


def reliability_figure(record: dict, path: Path) -> bool:
    """The test reliability diagram (before and after temperature scaling) as a PNG; False when there is none."""
    rel = record.get("reliability_test")
    if not rel:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 4.2), dpi=110)
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="perfect calibration")
    for key, style in (("before", "o-"), ("after", "s-")):
        rows = [r for r in rel[key] if r["count"]]
        ax.plot([r["confidence"] for r in rows], [r["accuracy"] for r in rows], style, ms=4,
                label=f"{key} temperature scaling (ECE {record['ece'][f'test_{key}']:.3f})")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence of the predicted class", ylabel="accuracy",
           title=f"Reliability on the test split (T = {record['temperature']:.2f})")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True
