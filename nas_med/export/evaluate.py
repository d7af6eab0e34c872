"""External validation: an exported model on another dataset with the same classes, recorded beside its card.

``evaluate`` loads the model folder read-only (weights, preprocessing, operating point), loads the dataset at the
model's input size and channels, matches classes by name (not by index: a folder's sub-folders sort
alphabetically, a MedMNIST file has its own order), and measures on the chosen split: AUC, accuracy, sensitivity
and specificity with bootstrap intervals at the stored operating point and at the best threshold for this data
(Youden's J on these very images: optimistic, the ceiling of re-thresholding), calibration (ECE with and without
the stored temperature, and the temperature this data would want), the stored prediction sets' coverage, the
dataset's own near-duplicate groups, and how many of its images copy an image the model was trained, validated or
tested on (from the export's ``data_hashes.json``). The record is written to ``MODEL_DIR/evaluations/<name>.json`` and the card's
"External evaluations" section is rebuilt from every record there; the weights are never touched.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..calibration import apply_temperature, ece, fit_temperature, youden_threshold
from ..conformal import check_record, prediction_sets, quantile
from ..data.types import Dataset, Split
from ..errors import UserError
from .checks import read_json
from .load import EVALUATIONS, _load, read_operating_point, read_preprocessing
from .operating import _logits
from .subgroups import MIN_IMAGES, MIN_PER_CLASS, metrics_with_ci, read_metadata, subgroup_rows

__all__ = ["EVALUATIONS", "SPLITS", "Evaluation", "evaluate", "match_classes"]

SPLITS = ("test", "val", "train", "all")
SECTION = "## External evaluations"
MARKER = "<!-- nas-med evaluations: rebuilt by `nas-med evaluate` from evaluations/*.json -->"


@dataclass(frozen=True)
class Evaluation:
    """Where an evaluation was written and what it holds."""

    path: Path
    record: dict


def match_classes(model_classes: list[str], data_classes: list[str], dataset: str) -> np.ndarray:
    """Index map from the dataset's class k to the model's class; UserError naming the classes that differ."""
    missing = [c for c in model_classes if c not in data_classes]
    extra = [c for c in data_classes if c not in model_classes]
    if missing or extra:
        parts = ([f"the model's {', '.join(repr(c) for c in missing)} not in the dataset"] if missing else []) + \
                ([f"the dataset's {', '.join(repr(c) for c in extra)} not in the model"] if extra else [])
        raise UserError(f"the classes of '{dataset}' do not match the model's by name: {'; '.join(parts)} "
                        f"(model: {', '.join(repr(c) for c in model_classes)}).")
    return np.array([model_classes.index(c) for c in data_classes], dtype=np.int64)


def _name(dataset: str, split: str, name: str | None) -> str:
    raw = name or f"{dataset.rstrip('/').rsplit('/', 1)[-1]}-{split}"
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", raw).strip("._") or "evaluation"
    return safe[:80]


def _split(data: Dataset, split: str) -> Split:
    if split == "all":
        parts = [s for s in data.splits.values() if len(s)]
        return Split(torch.cat([s.images for s in parts]), torch.cat([s.labels for s in parts]))
    return data.splits[split]


def evaluate(model_dir: str | Path, dataset: str, *, data_root: str | Path | None = None, split: str | None = None,
             name: str | None = None, n_bootstrap: int = 1000, confidence: float = 0.95,
             cache_dir: str | Path | None = None, download: bool = True,
             metadata: str | Path | None = None) -> Evaluation:
    """Evaluate the exported model in ``model_dir`` on ``split`` of ``dataset`` (default: ``all`` images of a
    folder, else ``test``); write ``evaluations/<name>.json`` and the card section. ``metadata``: a CSV of
    attributes per image (``export.subgroups``) for figures per subgroup. See the module docstring."""
    from ..data import load_dataset

    folder = Path(model_dir)
    if split is not None and split not in SPLITS:
        raise UserError(f"--split must be one of {', '.join(SPLITS)}, got '{split}'.")
    if n_bootstrap < 1:
        raise UserError(f"--bootstrap must be at least 1, got {n_bootstrap}.")
    pre = read_preprocessing(folder)
    op = read_operating_point(folder)
    if pre.get("task") == "multilabel":
        raise UserError(f"'{model_dir}' holds a multi-label model; evaluate handles binary and multi-class models.")
    if not (folder / "README.md").is_file():
        raise UserError(f"'{model_dir}' is not an exported model folder: README.md is missing.")
    model, _ = _load(folder)
    data = load_dataset(dataset, data_root=data_root, size=int(pre["input_size"]), channels=int(pre["channels"]),
                        cache_dir=cache_dir, download=download, duplicates="keep")
    classes = list(pre["class_names"])
    to_model = match_classes(classes, list(data.classes), dataset)
    split = split or ("all" if data.info.split_files else "test")
    part = _split(data, split)
    if len(part) < 2:
        raise UserError(f"the {split} split of '{dataset}' has {len(part)} image(s); at least 2 are needed.")
    labels = to_model[part.labels.numpy()]
    attributes = None
    if metadata is not None:
        files = data.info.split_files
        files = None if files is None else sum((files[s] for s in data.splits if split in ("all", s)), [])
        attributes = read_metadata(metadata, files, len(part))
    task = "binary" if len(classes) == 2 else "multiclass"
    logits = _logits(model, part.images, pre)
    temperature = float(op.get("temperature") or 1.0)
    probs = apply_temperature(logits, temperature)
    positive = op.get("positive_index")
    record: dict = {
        "name": _name(dataset, split, name), "dataset": dataset, "source": data.info.source or dataset,
        "split": split, "n": int(len(labels)), "class_names": classes,
        "class_counts": [int(v) for v in np.bincount(labels, minlength=len(classes))],
        "images": f"{pre['channels']} x {pre['input_size']} x {pre['input_size']} (the model's input)",
        "n_bootstrap": n_bootstrap, "confidence": confidence,
        "duplicates_within_dataset": None if data.info.duplicates is None else data.info.duplicates.to_dict(),
        "model_data_overlap": _overlap(folder, part.images),
    }
    if positive is not None and op.get("threshold") is not None:
        positive = int(positive)
        best = youden_threshold(probs[:, positive], labels == positive)
        record["positive_class"] = classes[positive]
        record["at_stored_threshold"] = {"threshold": float(op["threshold"]), **metrics_with_ci(
            task, labels, probs, positive, float(op["threshold"]), n_bootstrap, confidence)}
        record["at_best_threshold"] = {"threshold": best, "rule": "Youden's J on these images (optimistic)",
                                       **metrics_with_ci(task, labels, probs, positive, best, n_bootstrap, confidence)}
    else:
        record["at_argmax"] = metrics_with_ci(task, labels, probs, 1, None, n_bootstrap, confidence)
    metrics = record.get("at_stored_threshold") or record["at_argmax"]
    record["auc"], record["auc_ci"] = metrics["auc"]["value"], metrics["auc"]["ci"]
    record["calibration"] = {"stored_temperature": temperature,
                             "ece_unscaled": ece(apply_temperature(logits, 1.0), labels),
                             "ece_at_stored_temperature": ece(probs, labels),
                             "temperature_this_data_wants": fit_temperature(logits, labels)}
    if attributes is not None:
        thr = record.get("at_stored_threshold", {}).get("threshold")
        record["subgroups"] = subgroup_rows(task, labels, probs, attributes, positive, thr, n_bootstrap, confidence)
        record["metadata"] = str(metadata)
    conformal = op.get("conformal")
    if conformal:
        check_record(conformal, str(folder / "operating_point.json"))
        sets = prediction_sets(probs, quantile(np.asarray(conformal["scores"]), float(conformal["coverage"])))
        record["prediction_sets"] = {"coverage": float(conformal["coverage"]),
                                     "empirical_coverage": float(sets[np.arange(len(labels)), labels].mean()),
                                     "mean_set_size": float(sets.sum(1).mean())}
    out = folder / EVALUATIONS / f"{record['name']}.json"
    out.parent.mkdir(exist_ok=True)
    _write_atomic(out, json.dumps(_finite(record), indent=2) + "\n")
    _rebuild_card(folder)
    return Evaluation(out, record)


def _overlap(folder: Path, images: torch.Tensor) -> dict | str:
    """How many evaluated images are near copies of the images the model was trained, validated and tested on
    (from the export's ``data_hashes.json``), or why that cannot be said."""
    from ..data.duplicates import DATA_HASHES, near_copies, phash, read_hashes

    path = folder / DATA_HASHES
    if not path.is_file():
        return f"not checked: the model folder has no {DATA_HASHES} (exported before near-duplicate checks)"
    stored = read_json(path)
    threshold = int(stored.get("threshold", 4))
    query = phash(images)
    out: dict = {"threshold": threshold}
    for split, ref in read_hashes(stored).items():
        hit = near_copies(query, ref, threshold)
        out[split] = int(hit.sum())
    return out


def _finite(value):
    """NaN and infinities as None, so the JSON is strict."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _ci(entry: dict) -> str:
    v, (lo, hi) = entry["value"], entry["ci"]
    if v is None:
        return "n/a"
    return f"{v:.3f}" + ("" if lo is None else f" [{lo:.3f}, {hi:.3f}]")


def _row(r: dict) -> str:
    m = r.get("at_stored_threshold") or r.get("at_argmax")
    best = r.get("at_best_threshold")
    cal, sets, over = r["calibration"], r.get("prediction_sets"), r.get("model_data_overlap")
    cells = [f"`{r['name']}`", f"{r['dataset']} ({r['split']}, {r['n']} images)", _ci(m["auc"]),
             _ci(m["sensitivity"]), _ci(m["specificity"]),
             "-" if not best else f"{best['threshold']:.4f}: {_ci(best['sensitivity'])} / {_ci(best['specificity'])}",
             "n/a" if cal["ece_at_stored_temperature"] is None else
             f"{cal['ece_unscaled']:.3f} -> {cal['ece_at_stored_temperature']:.3f}",
             "-" if not sets else f"{sets['empirical_coverage']:.3f} (size {sets['mean_set_size']:.2f})",
             " / ".join(str(over.get(s, "-")) for s in ("train", "val", "test")) if isinstance(over, dict) else
             "not checked"]
    return "| " + " | ".join(cells) + " |"


def _subgroup_lines(r: dict) -> list[str]:
    rows = r.get("subgroups")
    if not rows:
        return []
    out = ["", f"Subgroups of `{r['name']}` (from `{Path(r.get('metadata', '')).name}`; groups under {MIN_IMAGES} "
               f"images or {MIN_PER_CLASS} of a class are flagged: too few to say anything):", "",
           "| attribute | value | images (per class) | AUC | sensitivity | specificity | |", "|---|---|---|---|---|---|---|"]
    out += [f"| {g['attribute']} | {g['value']} | {g['n']} ({', '.join(str(c) for c in g['per_class'])}) | "
            f"{_ci(g['auc'])} | {_ci(g['sensitivity'])} | {_ci(g['specificity'])} | "
            f"{'too few to say' if g['too_small'] else ''} |" for g in rows]
    return out


def _rebuild_card(folder: Path) -> None:
    """The card's "External evaluations" section, rebuilt from every ``evaluations/*.json`` (at the card's end)."""
    card = (folder / "README.md").read_text(encoding="utf-8")
    head = card.split(MARKER)[0].rstrip() + "\n"
    records = []
    for path in sorted((folder / EVALUATIONS).glob("*.json")):
        try:
            records.append(read_json(path))
        except UserError:
            continue
    if not records:
        _write_atomic(folder / "README.md", head)
        return
    lines = ["", MARKER, SECTION, "",
             "The exported model, unchanged, on other data (`nas-med evaluate`; one JSON file per row in "
             "`evaluations/`). AUC, sensitivity and specificity at the stored operating point with 95% bootstrap "
             "intervals; the best threshold is chosen on the evaluated images themselves (optimistic: what "
             "re-thresholding there could reach at most); ECE without -> with the stored temperature; coverage of "
             "the stored prediction sets; evaluated images within a few bits (pHash) of an image the model was trained, "
             "validated or tested on (such copies make the figures optimistic).", "",
             "| evaluation | data | AUC | sensitivity | specificity | best threshold: sens. / spec. | ECE | "
             "set coverage | copies of the model's train / val / test images |", "|---|---|---|---|---|---|---|---|---|"]
    lines += [_row(r) for r in records]
    for r in records:
        lines += _subgroup_lines(r)
    _write_atomic(folder / "README.md", head + "\n".join(lines) + "\n")
