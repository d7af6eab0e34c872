"""``radimagenet-msk``: the 5-class MR musculoskeletal task of the minimalist-CNN paper, from a local RadImageNet.

Images are listed from the ``RadiologyAI_*.csv`` files (columns ``filename,label``; anatomy = first dash token
of the label) when ``data_root`` has them, else from the tree ``radiology_ai/MR/<anatomy>/<pathology>/*.png``.
``data_root`` may be the folder holding ``radiology_ai/``, ``radiology_ai/`` itself or its ``MR/`` folder.
Classes are anatomies (all pathologies pooled): ankle (``af``, ``ankle_foot``, ``ankle-foot``, ``ankle``), hip,
knee, shoulder, spine; other MR anatomies and other modalities are ignored.

Protocol (the paper's): pool, split 65/25/10 train/val/test stratified by anatomy; the sub-training set is a
stratified random ``fraction`` of train (rounded down, at least one image per class); validation is a random
stratified draw from the val split of 30% of the sub-training size (rounded down; the whole val split when
``fraction`` is 1, as in the paper's 100% row); test stays whole. Only the chosen images are decoded.
"""
from __future__ import annotations

import csv
import logging
import math
import os
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from ..errors import UserError
from .decode import decode_cached, extensions
from .folder import report_unreadable
from .splits import check_fraction, fraction_count, stratified_indices, subsample_indices
from .types import Dataset, DatasetInfo, Split

log = logging.getLogger(__name__)

NAME = "radimagenet-msk"
CLASSES = ["ankle", "hip", "knee", "shoulder", "spine"]
ALIASES = {"af": "ankle", "ankle_foot": "ankle", "ankle-foot": "ankle", "ankle": "ankle", "ankle/foot": "ankle",
           "hip": "hip", "knee": "knee", "shoulder": "shoulder", "spine": "spine"}
RATIOS = (0.65, 0.25, 0.10)
VAL_SHARE = 0.3
CSV_COLUMNS = ("filename", "label")
MODALITIES = {"CT", "MR", "US"}


def class_of(anatomy: str) -> int | None:
    """Class index of an anatomy name or alias (case-insensitive), None for a non-MSK anatomy."""
    name = ALIASES.get(anatomy.strip().lower())
    return None if name is None else CLASSES.index(name)


def locate(data_root: str | Path | None) -> tuple[Path, Path | None, list[Path]]:
    """(base folder that CSV file names are relative to, MR folder or None, CSV files) under ``data_root``."""
    if data_root is None:
        raise UserError(f"{NAME} needs --data-root: the folder holding radiology_ai/ (RadImageNet is not "
                        f"downloadable).")
    root = Path(data_root).expanduser()
    if not root.is_dir():
        raise UserError(f"--data-root '{root}' does not exist or is not a folder.")
    base = root.parent if root.name == "radiology_ai" else root.parent.parent if root.name == "MR" else root
    mr = next((p for p in (root / "radiology_ai" / "MR", root / "MR", root) if p.name == "MR" and p.is_dir()),
              None)
    csvs = sorted(base.glob("RadiologyAI_*.csv")) or sorted(root.glob("RadiologyAI_*.csv"))
    if mr is None and not csvs:
        raise UserError(f"no RadImageNet data under '{root}': expected radiology_ai/MR/<anatomy>/<pathology>/"
                        f"*.png or RadiologyAI_*.csv files.")
    return base, mr, csvs


def list_tree(mr: Path) -> tuple[list[Path], list[int]]:
    """Image files and class indices from ``MR/<anatomy>/<pathology>/...``."""
    suffixes = extensions()
    files, labels = [], []
    for anatomy in sorted(p for p in mr.iterdir() if p.is_dir()):
        k = class_of(anatomy.name)
        if k is None:
            continue
        for dirpath, dirnames, filenames in os.walk(anatomy):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for fname in sorted(filenames):
                if not fname.startswith(".") and os.path.splitext(fname)[1].lower() in suffixes:
                    files.append(Path(dirpath) / fname)
                    labels.append(k)
    return files, labels


def _modality(filename: str) -> str | None:
    return next((part for part in PurePosixPath(filename).parts if part in MODALITIES), None)


def list_csv(base: Path, csvs: list[Path]) -> tuple[list[Path], list[int]]:
    """Image files and class indices from RadiologyAI CSV files (MR rows of the five anatomies)."""
    seen: dict[str, int] = {}
    for path in csvs:
        try:
            with open(path, newline="", encoding="utf-8-sig") as fh:
                reader = csv.DictReader(fh)
                columns = [c.strip() for c in reader.fieldnames or []]
                if not set(CSV_COLUMNS) <= set(columns):
                    raise UserError(f"RadImageNet CSV '{path}' must have the columns {','.join(CSV_COLUMNS)} "
                                    f"(found: {','.join(columns) or 'none'}).")
                for row in reader:
                    row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
                    filename = row["filename"].replace("\\", "/")
                    k = class_of(row["label"].split("-", 1)[0])
                    if k is not None and _modality(filename) in (None, "MR"):
                        seen.setdefault(filename, k)
        except OSError as exc:
            raise UserError(f"cannot read RadImageNet CSV '{path}': {exc.strerror}.") from None
    names = sorted(seen)
    return [base / n for n in names], [seen[n] for n in names]


def protocol_sizes(n_train: int, fraction: float) -> tuple[int, int | None]:
    """(sub-training size, validation draw size or None for the whole val split) for ``fraction`` of ``n_train``.

    The paper's table: 1% of 348,824 -> 3,488 / 1,046; 3% -> 10,464 / 3,139; 10% -> 34,882 / 10,464.
    """
    check_fraction(fraction)
    if fraction == 1:
        return n_train, None
    n_sub = fraction_count(fraction, n_train)
    return n_sub, int(math.floor(VAL_SHARE * n_sub + 1e-9))


def protocol_indices(labels: torch.Tensor, fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Indices of the sub-training, validation and test sets of the paper's protocol."""
    train, val, test = stratified_indices(labels, RATIOS, seed)
    n_sub, n_val = protocol_sizes(len(train), fraction)
    if n_val is None:
        return {"train": train, "val": val, "test": test}
    sub = train[subsample_indices(labels[train], n_sub, seed, "training", fraction)]
    draw = val[subsample_indices(labels[val], min(n_val, len(val)), seed + 1, "validation", fraction)]
    return {"train": sub, "val": draw, "test": test}


def load(data_root: str | Path | None, *, fraction: float = 1.0, seed: int = 0, size: int | None = None,
         channels: int | None = None, cache_dir: str | Path | None = None) -> Dataset:
    """The radimagenet-msk dataset under ``data_root`` with the paper's protocol."""
    check_fraction(fraction)
    base, mr, csvs = locate(data_root)
    files, labels = list_csv(base, csvs) if csvs else list_tree(mr)  # type: ignore[arg-type]
    listing = ", ".join(str(c) for c in csvs) if csvs else str(mr)
    found = set(labels)
    missing = [c for k, c in enumerate(CLASSES) if k not in found]
    if missing:
        raise UserError(f"no MR images of {', '.join(repr(m) for m in missing)} in '{listing}' (need all of "
                        f"{', '.join(CLASSES)}; ankle may be named af, ankle_foot or ankle-foot).")
    label_t = torch.as_tensor(labels, dtype=torch.long)
    parts = protocol_indices(label_t, fraction, seed)
    chosen = np.concatenate(list(parts.values()))
    chosen_files = [files[i] for i in chosen]
    images, ok = decode_cached(chosen_files, size=size, channels=channels, cache_dir=cache_dir, kind="radimagenet")
    ok_np = ok.numpy()
    report_unreadable(chosen_files, ok_np, listing)
    position = np.cumsum(ok_np) - 1  # row of each chosen file in ``images`` (when readable)
    splits, start = {}, 0
    for name, index in parts.items():
        keep = np.flatnonzero(ok_np[start:start + len(index)]) + start
        rows = torch.as_tensor(position[keep], dtype=torch.long)
        splits[name] = Split(images[rows], label_t[torch.as_tensor(chosen[keep], dtype=torch.long)])
        start += len(index)
    info = DatasetInfo(source=str(listing), pool=len(files), fraction=fraction, seed=seed,
                       protocol="65/25/10, val = 30% of sub-training", unreadable=int((~ok_np).sum()))
    log.info("radimagenet-msk: pool %d, train %d, val %d, test %d", len(files), *(len(s) for s in splits.values()))
    return Dataset(NAME, "multiclass", list(CLASSES), **splits, info=info)
