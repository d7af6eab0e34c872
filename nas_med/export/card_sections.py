"""The clinical sections of the model card, as named template fields: intended use, class balance, the positive
class and operating point, metrics at that point with intervals, the confusion matrix, per-class figures,
calibration, prediction sets, train/test independence (near-duplicates), and limitations that follow from the data (validation size, rarest class, sites)."""
from __future__ import annotations

from ..data.about import about
from ..data.types import Dataset

__all__ = ["SMALL_VAL_IMAGES", "SMALL_VAL_RAREST", "clinical_fields"]

SMALL_VAL_IMAGES, SMALL_VAL_RAREST = 200, 30  # as the search's hint to run `nas-med confirm`


def _f(v, digits: int = 3) -> str:
    """A figure of the model (AUC, accuracy, sensitivity, ECE, coverage...): 3 decimals everywhere in the card, as
    its intervals and the published figures (thresholds, parameters of the decision, keep 4)."""
    return "n/a" if v is None or v != v else f"{v:.{digits}f}"


def _band(ci) -> str:
    return "" if not ci or ci[0] is None or ci[0] != ci[0] else f" [{ci[0]:.3f}, {ci[1]:.3f}]"


def _balance(data: Dataset) -> str:
    counts = data.class_counts()
    head = "| split | " + " | ".join(data.classes) + " | total |"
    rows = [head, "|---|" + "---|" * (len(data.classes) + 1)]
    for split, c in counts.items():
        total = len(data.splits[split])
        rows.append(f"| {split} | " + " | ".join(f"{n} ({n / max(1, total):.0%})" for n in c) + f" | {total} |")
    return "\n".join(rows)


def _confusion(op: dict, classes: list[str]) -> str:
    matrix = (op.get("test") or {}).get("confusion")
    if not matrix:
        return "No confusion matrix (multi-label task: each label is decided at 0.5)."
    rows = ["| true \\ predicted | " + " | ".join(classes) + " |", "|---|" + "---|" * len(classes)]
    rows += [f"| {classes[i]} | " + " | ".join(str(v) for v in row) + " |" for i, row in enumerate(matrix)]
    return "\n".join(rows)


def _per_class(op: dict, classes: list[str]) -> str:
    per = (op.get("test") or {}).get("per_class")
    if not per:
        return "No per-class figures (multi-label task)."
    rows = ["| class | recall | precision | test images |", "|---|---|---|---|"]
    rows += [f"| {c} | {_f(r['recall'])} | {_f(r['precision'])} | {r['support']} |" for c, r in zip(classes, per)]
    if len(classes) > 2:
        recalls = [r["recall"] for r in per if r["recall"] == r["recall"]]
        precisions = [r["precision"] for r in per if r["precision"] == r["precision"]]
        rows.append(f"| macro (mean over classes) | {_f(sum(recalls) / max(1, len(recalls)))} | "
                    f"{_f(sum(precisions) / max(1, len(precisions)))} | {sum(r['support'] for r in per)} |")
    return "\n".join(rows)


def _operating(op: dict, data: Dataset, report) -> tuple[str, str]:
    """(positive-class paragraph, metrics-at-the-operating-point table)."""
    test = op.get("test") or {}
    auc = report.per_seed[0].get("auc")
    auc_ci = report.per_seed[0].get("ci", {}).get("auc")
    if op.get("positive_class") is None:
        text = (f"A {data.task} task: no single positive class. Predictions are the class of highest "
                f"(temperature-scaled) probability; sensitivity and specificity below are macro averages of "
                "one-vs-rest figures (per-class figures follow).")
        rows = ["| metric (test, exported model) | value [95% CI] |", "|---|---|", f"| AUC (macro one-vs-rest) | {_f(auc)}{_band(auc_ci)} |",
                f"| accuracy | {_f(test.get('accuracy'))} |"]
        return text, "\n".join(rows)
    pos = op["positive_class"]
    other = [c for c in data.classes if c != pos][0]
    target = op.get("target_sensitivity")
    val = op.get("held_out") or op.get("validation") or {}
    text = (f"**Positive class: {pos}** (class {op['positive_index']}; the other class is \"{other}\"). "
            f"Sensitivity is the share of {pos} images called {pos}; specificity the share of {other} images "
            f"called {other}.\n\n"
            f"**Operating point:** an image is called {pos} when its probability of {pos} is at least "
            f"**threshold {op['threshold']:.4f}**, chosen on {op.get('fitted_on', 'the validation split')} by "
            f"{op['rule']}{'' if target is None else ''} (there: sensitivity {_f(val.get('sensitivity'))}, "
            f"specificity {_f(val.get('specificity'))}). `nas-med predict` applies it; `--threshold` sets another.")
    ci = test.get("ci") or {}
    rows = ["| metric (test, exported model, at the threshold) | value [95% CI] | counts |", "|---|---|---|",
            f"| sensitivity ({pos} recall) | {_f(test.get('sensitivity'))}{_band(ci.get('sensitivity'))} | "
            f"{test.get('true_positives')} of {test.get('positives')} |",
            f"| specificity ({other} recall) | {_f(test.get('specificity'))}{_band(ci.get('specificity'))} | "
            f"{test.get('true_negatives')} of {test.get('negatives')} |",
            f"| accuracy | {_f(test.get('accuracy'))}{_band(ci.get('accuracy'))} | of {test.get('n')} |",
            f"| AUC (threshold-free) | {_f(auc)}{_band(auc_ci)} | |"]
    return text, "\n".join(rows)


def _calibration(op: dict) -> str:
    e = op.get("ece")
    if not e:
        return "Not measured (multi-label task)."
    t = op["temperature"]
    text = (f"Temperature scaling of the exported weights' logits (probabilities are softmax(logits / T); it never changes the ranking, so the AUC "
            f"is unchanged), T = {t:.3f}, fitted on {op.get('fitted_on', 'the validation split')}. Expected "
            f"calibration error (ECE, 10 equal-width confidence bins; lower is better): held-out "
            f"{_f(e.get('fit_before', e['val_before']))} before -> {_f(e.get('fit_after', e['val_after']))} after; "
            f"**test {_f(e['test_before'])} before -> {_f(e['test_after'])} after**.")
    if e["test_after"] > e["test_before"]:
        text += (f"\n\n**Scaling did not help on test**: the test ECE rose by {_f(e['test_after'] - e['test_before'])}. "
                 "The probabilities below are the scaled ones, but they are not shown to be calibrated: read them "
                 "as scores, and check calibration on your own data before reading them as risks.")
    else:
        text += f" Scaling lowered the test ECE by {_f(e['test_before'] - e['test_after'])}."
    return text + "\n\n![Reliability diagram of the test split](reliability.png)"


def _conformal(op: dict, classes: list[str]) -> str:
    c = op.get("conformal")
    if not c:
        return "None (multi-label task)."
    lo, hi = c["guarantee"]
    test = c["test"]
    sizes = ", ".join(f"{n} of size {k}" for k, n in test["set_sizes"].items() if n)
    exact = c.get("calibrated_on", "").startswith("the validation split") and "in-sample" not in c["calibrated_on"]
    why = ("held-out images of the exported model itself: where new images are exchangeable with them, a set holds "
           f"the true class with probability between {lo:.3f} and {hi:.3f}" if exact else
           "out-of-fold predictions of models of the same recipe (not the exported weights themselves): the "
           f"split-conformal guarantee ({lo:.3f} to {hi:.3f}) holds for those models and approximately for this "
           "one; the test figures below are the check")
    return (f"`nas-med predict` returns with each image the set of classes whose probability is at least "
            f"{max(0.0, 1 - c['qhat']) if c['qhat'] != float('inf') else 0:.4f} ({c['method']}; "
            f"{c['coverage']:.0%} coverage, `--coverage` sets another). Calibrated on {c['n_calibration']} "
            f"{why}.\n\n"
            f"| on the test split | value |\n|---|---|\n"
            f"| empirical coverage (true class in the set) | {_f(test['coverage'])} ({test['n']} images) |\n"
            f"| mean set size | {test['mean_set_size']:.3f} of {len(classes)} classes |\n"
            f"| set sizes | {sizes} |\n\n"
            "A set of one class is a confident call at that coverage; a set of several says the model cannot "
            "tell them apart for this image (refer, or look again); an empty set says the image resembles none "
            "of the training classes.")


def _subgroups(op: dict) -> str:
    rows = op.get("subgroups")
    if not rows:
        return ""
    from .subgroups import MIN_IMAGES, MIN_PER_CLASS

    lines = ["## Subgroups of the test split", "",
             f"Figures per attribute value (from `--metadata`), at the operating point, with 95% bootstrap intervals; "
             f"groups under {MIN_IMAGES} images or {MIN_PER_CLASS} of a class are flagged: too few to say anything.",
             "", "| attribute | value | images (per class) | AUC | sensitivity | specificity | |",
             "|---|---|---|---|---|---|---|"]
    for g in rows:
        lines.append(f"| {g['attribute']} | {g['value']} | {g['n']} ({', '.join(str(c) for c in g['per_class'])}) | "
                     + " | ".join(_f(g[m]["value"]) + _band(g[m]["ci"]) for m in ("auc", "sensitivity",
                                                                                     "specificity"))
                     + f" | {'too few to say' if g['too_small'] else ''} |")
    return "\n".join(lines) + "\n\n"


def _independence(data: Dataset) -> str:
    rep = data.info.duplicates
    if rep is None:
        return "Not checked."
    text = rep.line()[0].upper() + rep.line()[1:] + "."
    if rep.leaked:
        text += (f" **{rep.leaked} group(s) of near-identical images span splits**: a test image with a copy in "
                 "training inflates the test figures above; ")
        text += ("`--duplicates drop` removes them from val/test (the published split is kept here so that the "
                 "figures compare with published ones)." if rep.fixed_splits else
                 "`--duplicates group` keeps each group in one split.")
    return text


def _limitations(data: Dataset) -> str:
    val = data.val.labels
    counts = data.class_counts()["val"]
    rare = min(counts) if counts else 0
    known = about(data.name) or {}
    lines = ["- A research artefact, not a medical device; not validated for clinical decisions."]
    if len(val) < SMALL_VAL_IMAGES or rare < SMALL_VAL_RAREST:
        lines.append(f"- The validation split is small ({len(val)} images, {rare} of the rarest class): the "
                     "architecture choice, the temperature and the threshold were fitted on few images and may "
                     "not carry over; the test intervals above are wide for the same reason.")
    if known.get("sites") == 1:
        lines.append(f"- Single site: {known['acquisition']}. Scanners, protocols and populations elsewhere "
                     "differ; expect lower figures on other sites until measured there.")
    elif not known:
        lines.append("- Acquisition (sites, devices, population) was not recorded; judge transfer to other data "
                     "with care.")
    leaked = 0 if data.info.duplicates is None else data.info.duplicates.leaked
    if leaked:
        lines.append(f"- {leaked} group(s) of near-duplicate images span the splits (see Data): the test figures "
                     "may be optimistic.")
    lines.append(f"- Images at {data.size} x {data.size} px: findings smaller than a few pixels at this size "
                 "cannot be seen by the model.")
    lines.append("- Validate on your own data, at your own threshold, before any use.")
    return "\n".join(lines)


def clinical_fields(op: dict, data: Dataset, report) -> dict[str, str]:
    """The template fields of the clinical sections (``model_card.md``)."""
    known = about(data.name) or {}
    pos = op.get("positive_class")
    text, table = _operating(op, data, report)
    names = "; ".join(f'"{c}"' for c in data.classes)
    task = (f"binary classifier (\"{pos}\" vs \"{[c for c in data.classes if c != pos][0]}\")" if pos
            else f"{data.task} classifier ({len(data.classes)} classes: {names})")
    return {
        "task_line": task, "positive_line": f"Positive class: **{pos}**." if pos else "",
        "intended_use": (f"Research on {known.get('modality', 'medical')} image classification: comparing small "
                         "networks, studying explanations, and as a starting point to be re-validated on local "
                         f"data. It outputs a probability per class ({'; '.join(repr(c) for c in data.classes)})."),
        "out_of_scope": ("Diagnosis or triage of patients; use on other modalities, body parts, devices or image "
                         "sizes than the data below; use without checking the threshold on the target population."),
        "acquisition": known.get("acquisition", "not recorded"),
        "balance_table": _balance(data), "operating_text": text, "operating_table": table,
        "confusion_table": _confusion(op, data.classes), "per_class_table": _per_class(op, data.classes),
        "calibration_text": _calibration(op), "limitations": _limitations(data),
        "conformal_text": _conformal(op, data.classes), "independence_text": _independence(data),
        "subgroups_section": _subgroups(op),
    }
