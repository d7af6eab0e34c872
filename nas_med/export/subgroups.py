"""Subgroup figures: AUC, sensitivity and specificity per value of an attribute (sex, age band, site, device), with
bootstrap intervals and the number of images, and a flag where a group is too small to say anything.

The attributes come from a CSV (``--metadata``): a ``filename`` column (a folder's path relative to its root, e.g.
``benign/p01.png``, or the bare file name where it is unique) or an ``index`` column (the image's position in the
evaluated split, for datasets without files), plus one column per attribute. Every evaluated image needs exactly
one row; rows for other images are ignored. A numeric column with more than ``MAX_LEVELS`` distinct values (age) is
cut into quartile bands.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..final.bootstrap import bootstrap_metrics, interval
from ..metrics import all_metrics, decide, sensitivity_specificity

__all__ = ["MIN_IMAGES", "MIN_PER_CLASS", "METRICS", "metrics_with_ci", "read_metadata", "subgroup_rows"]

MAX_LEVELS = 8
MIN_IMAGES, MIN_PER_CLASS = 30, 5  # under either: the group's figures are flagged "too few to say"
KEYS = ("filename", "index")
METRICS = ("auc", "accuracy", "sensitivity", "specificity")  # the columns of ``retrain.bootstrap_metrics``


def metrics_with_ci(task: str, labels: np.ndarray, probs: np.ndarray, positive: int, threshold: float | None,
                    n_bootstrap: int, confidence: float) -> dict:
    """AUC, accuracy, sensitivity and specificity (at ``threshold`` on the ``positive`` class, else argmax) with
    bootstrap intervals: {metric: {"value", "ci"}}; AUC is None where one class is absent."""
    point = all_metrics(task, labels, probs, positive)
    if threshold is not None:
        sens, spec = sensitivity_specificity(task, labels, probs, positive, threshold)
        point.update(accuracy=float((decide(probs, positive, threshold) == labels).mean()), sensitivity=sens,
                     specificity=spec)
    samples = bootstrap_metrics(task, labels, [probs], n_bootstrap, 0, positive, threshold)[0]
    single = len(np.unique(labels)) < 2
    return {m: {"value": None if single and m == "auc" else float(point[m]),
                "ci": [None, None] if single and m == "auc" else list(interval(samples[:, i], confidence))}
            for i, m in enumerate(METRICS)}


def _rows(path: Path) -> tuple[list[str], list[dict]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = [c.strip() for c in reader.fieldnames or []]
            rows = []
            for row in reader:
                if None in row:  # more fields than the header: an unquoted comma, most likely
                    raise UserError(f"--metadata '{path}' line {reader.line_num} has more fields than its header "
                                    f"({','.join(columns)}); quote values that hold commas.")
                rows.append({(k or "").strip(): (v or "").strip() for k, v in row.items()})
    except OSError as exc:
        raise UserError(f"cannot read --metadata '{path}': {exc.strerror}.") from None
    except (csv.Error, UnicodeDecodeError) as exc:
        raise UserError(f"--metadata '{path}' is not a readable CSV file: {exc}.") from None
    return columns, rows


def _bands(values: list[str]) -> list[str]:
    """Quartile bands of a numeric column with many distinct values, else the values as they are."""
    try:
        numbers = np.array([float(v) for v in values])
    except ValueError:
        return values
    if len(set(values)) <= MAX_LEVELS or not np.isfinite(numbers).all():
        return values
    edges = np.unique(np.quantile(numbers, [0, 0.25, 0.5, 0.75, 1]))
    which = np.clip(np.searchsorted(edges, numbers, side="right") - 1, 0, len(edges) - 2)
    return [f"{edges[k]:g}-{edges[k + 1]:g}" for k in which]


def read_metadata(path: str | Path, files: list[str] | None, n: int) -> dict[str, list[str]]:
    """{attribute: value per evaluated image} from the CSV at ``path``; ``files`` are the images' paths relative to
    the folder (None for datasets without files: the CSV needs an ``index`` column). UserError for a CSV without
    the key column or attributes, a file mapped twice, or an image without a row."""
    path = Path(path).expanduser()
    columns, rows = _rows(path)
    key = next((k for k in KEYS if k in columns), None)
    if key is None or (key == "filename" and files is None):
        need = "filename (or index)" if files is not None else "index (this dataset has no files)"
        raise UserError(f"--metadata '{path}' needs a column {need}; found: {','.join(columns) or 'none'}.")
    attributes = [c for c in columns if c and c not in KEYS]
    if not attributes:
        raise UserError(f"--metadata '{path}' has no attribute column beside '{key}' (e.g. sex, age, site).")
    by_key: dict[str, dict] = {}
    for row in rows:
        k = row.get(key, "").replace("\\", "/").removeprefix("./")
        if k in by_key:
            raise UserError(f"--metadata '{path}' maps '{k}' twice; give one row per image.")
        by_key[k] = row
    if key == "index":
        wanted = [str(i) for i in range(n)]
    else:
        names: dict[str, str | None] = {}
        for rel in by_key:
            name = rel.rsplit("/", 1)[-1]
            names[name] = rel if name not in names else None  # None: the bare name is ambiguous
        wanted = [f if f in by_key else (names.get(f.rsplit("/", 1)[-1]) or f) for f in files or []]
    missing = [w for w in wanted if w not in by_key]
    if missing:
        raise UserError(f"--metadata '{path}' has no row for {len(missing)} of {len(wanted)} evaluated images "
                        f"(first: '{missing[0]}').")
    return {a: _bands([by_key[w].get(a, "") or "(blank)" for w in wanted]) for a in attributes}


def subgroup_rows(task: str, labels: np.ndarray, probs: np.ndarray, attributes: dict[str, list[str]],
                  positive: int | None, threshold: float | None, n_bootstrap: int, confidence: float) -> list[dict]:
    """One row per attribute value: n, images per class, AUC, sensitivity and specificity with intervals (at the
    threshold for binary models, macro one-vs-rest otherwise) and ``too_small`` where the group cannot say much."""
    out = []
    pos = 1 if positive is None else int(positive)
    for attribute, values in attributes.items():
        values_arr = np.asarray(values, dtype=object)
        for value in sorted(set(values)):
            sel = values_arr == value
            y, p = labels[sel], probs[sel]
            counts = np.bincount(y, minlength=probs.shape[1])
            row = {"attribute": attribute, "value": value, "n": int(sel.sum()), "per_class": counts.tolist(),
                   "too_small": bool(sel.sum() < MIN_IMAGES or counts.min() < MIN_PER_CLASS),
                   **metrics_with_ci(task, y, p, pos, threshold, n_bootstrap, confidence)}
            out.append(row)
    return out
