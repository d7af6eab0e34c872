"""``folder:PATH`` datasets: one sub-folder per class holding PNG/JPEG (and DICOM) images, any depth below.

The images are split train/val/test, stratified by class, from ``seed``. An optional group key (a patient id)
keeps every group in one split: ``group_regex`` is searched in each file's path relative to its class folder
(first capture group, else the whole match), or ``group_csv`` has columns ``filename,group`` (``filename`` is
the path relative to PATH, e.g. ``benign/p01_1.png``, or the bare file name). Images are decoded once, resized
to ``size`` while decoding, and cached on disk; unreadable files are skipped with one warning.
"""
from __future__ import annotations

import csv
import logging
import re
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from .decode import decode_cached, extensions, is_image_file
from .splits import stratified_indices
from .types import Dataset, DatasetInfo, Split, Task

log = logging.getLogger(__name__)

DEFAULT_RATIOS = (0.7, 0.15, 0.15)
SPLIT_NAMES = ("train", "val", "test")


def list_images(root: Path) -> tuple[list[str], list[Path], list[int]]:
    """(class names, image files, class index per file) of a folder with one sub-folder per class."""
    if not root.exists():
        raise UserError(f"image folder '{root}' does not exist.")
    if not root.is_dir():
        raise UserError(f"'{root}' is not a folder (expected one sub-folder per class).")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise UserError(f"image folder '{root}' has no class sub-folders (expected one sub-folder per class).")
    for class_dir in class_dirs:  # the class names go into JSON, the model card and every report: text only
        try:
            class_dir.name.encode("utf-8")
        except UnicodeEncodeError:
            shown = class_dir.name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            raise UserError(f"class folder '{shown}' in '{root}' has a name that is not UTF-8 text; rename it "
                            "(class names are written into the exported model's files).") from None
    suffixes = extensions()
    files: list[Path] = []
    labels: list[int] = []
    for k, class_dir in enumerate(class_dirs):
        found = sorted(p for p in class_dir.rglob("*") if is_image_file(p, suffixes) and p.is_file())
        if not found:
            raise UserError(f"class folder '{class_dir}' has no images ({', '.join(suffixes)}).")
        files.extend(found)
        labels.extend([k] * len(found))
    if len(class_dirs) < 2:
        raise UserError(f"image folder '{root}' has a single class '{class_dirs[0].name}'; at least two class "
                        f"sub-folders are needed.")
    return [p.name for p in class_dirs], files, labels


def groups_from_regex(root: Path, files: list[Path], pattern: str) -> np.ndarray:
    """The group key of every file: ``pattern`` searched in its path relative to its class folder."""
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise UserError(f"--group-regex '{pattern}' is not a valid regular expression: {exc}.") from None
    keys = []
    for path in files:
        rel = path.relative_to(root).as_posix().split("/", 1)[1]
        match = regex.search(rel)
        if match is None:
            raise UserError(f"--group-regex '{pattern}' does not match the file '{rel}' (in '{path.parent}').")
        keys.append(match.group(1) if regex.groups and match.group(1) is not None else match.group(0))
    return np.asarray(keys, dtype=object)


def groups_from_csv(root: Path, files: list[Path], csv_path: str | Path) -> np.ndarray:
    """The group key of every file from a CSV with columns ``filename,group``."""
    csv_path = Path(csv_path).expanduser()
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = [c.strip() for c in reader.fieldnames or []]
            if not {"filename", "group"} <= set(columns):
                raise UserError(f"--group-csv '{csv_path}' must have the columns filename,group "
                                f"(found: {','.join(columns) or 'none'}).")
            rows = [({k.strip(): (v or "").strip() for k, v in row.items() if k}, reader.line_num) for row in reader]
    except OSError as exc:
        raise UserError(f"cannot read --group-csv '{csv_path}': {exc.strerror}.") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"--group-csv '{csv_path}' is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at "
                        f"offset {exc.start}); save it as UTF-8 (file names on disk are matched as UTF-8).") from None
    except csv.Error as exc:
        raise UserError(f"--group-csv '{csv_path}' is not a valid CSV file: {exc}.") from None
    by_path: dict[str, str] = {}
    for row, line in rows:
        rel, group = row["filename"].replace("\\", "/").removeprefix("./"), row["group"]
        if not rel or not group:
            raise UserError(f"--group-csv '{csv_path}' line {line}: {'an empty group' if rel else 'no filename'} "
                            f"({'for ' + repr(rel) if rel else 'group ' + repr(group)}); every file needs one group.")
        if by_path.get(rel, group) != group:
            raise UserError(f"--group-csv '{csv_path}' puts '{rel}' in two groups, {by_path[rel]!r} and "
                            f"{group!r} (line {line}); a file belongs to one patient.")
        by_path[rel] = group
    by_name: dict[str, str | None] = {}
    for rel, group in by_path.items():
        name = rel.rsplit("/", 1)[-1]
        by_name[name] = group if by_name.get(name, group) == group else None  # None: ambiguous bare name
    keys, missing = [], []
    for path in files:
        rel = path.relative_to(root).as_posix()
        group = by_path.get(rel, by_name.get(path.name))
        if group is None:
            missing.append(rel)
        keys.append(group)
    if missing:
        raise UserError(f"--group-csv '{csv_path}' gives no group for {len(missing)} of {len(files)} images "
                        f"(first: '{missing[0]}').")
    return np.asarray(keys, dtype=object)


def report_unreadable(files: list[Path], ok: np.ndarray, where: str) -> None:
    """One warning for all unreadable files; UserError when none could be read."""
    bad = np.flatnonzero(~ok)
    if len(bad) == len(files):
        raise UserError(f"none of the {len(files)} image files in '{where}' could be read (first: '{files[0]}').")
    if len(bad):
        log.warning("skipped %d of %d image files that could not be read (first: '%s')",
                    len(bad), len(files), files[bad[0]])


def split_indices(labels: torch.Tensor, ratios: tuple[float, float, float], seed: int,
                  groups: np.ndarray | None, classes: list[str]) -> dict[str, np.ndarray]:
    """Stratified, group-aware train/val/test indices; UserError when a split with a share comes out empty."""
    if groups is not None:
        _, groups = np.unique(groups, return_inverse=True)
    parts = dict(zip(SPLIT_NAMES, stratified_indices(labels, tuple(ratios), seed, groups)))
    for (name, index), share in zip(parts.items(), ratios):
        if share > 0 and len(index) == 0:
            raise UserError(f"too few images ({len(labels)}) or groups for split ratios {tuple(ratios)}: "
                            f"the {name} split is empty.")
        missing = sorted(set(range(len(classes))) - set(labels[index].tolist()))
        if share > 0 and missing:  # a class absent from a split: its AUC is undefined (0.5 for every trial)
            have = int((labels == missing[0]).sum())
            raise UserError(f"class '{classes[missing[0]]}' has {have} image(s), "
                            f"too few to appear in the {name} split at split ratios {tuple(ratios)}: every class "
                            f"needs at least one image in each split with a share (add images or change "
                            f"--split-ratios).")
    return parts


def load(path: str | Path, *, seed: int = 0, ratios: tuple[float, float, float] = DEFAULT_RATIOS,
         group_regex: str | None = None, group_csv: str | Path | None = None, size: int | None = None,
         channels: int | None = None, cache_dir: str | Path | None = None, name: str | None = None,
         duplicates: str = "group") -> Dataset:
    """An image folder as a Dataset split ``ratios`` (train, val, test) from ``seed``; with ``duplicates`` group
    or drop, every group of near-duplicate images (``duplicates.find_groups``) stays in one split, as a patient
    group does (joined with the ``group_regex``/``group_csv`` groups)."""
    if group_regex and group_csv:
        raise UserError("give either --group-regex or --group-csv, not both.")
    if not str(path).strip():
        raise UserError("folder: needs a path, e.g. 'folder:/data/knee-mri'.")
    root = Path(path).expanduser()
    classes, files, labels = list_images(root)
    groups = None
    if group_regex:
        groups = groups_from_regex(root, files, group_regex)
    elif group_csv:
        groups = groups_from_csv(root, files, group_csv)
    images, ok = decode_cached(files, size=size, channels=channels, cache_dir=cache_dir, kind="folder")
    ok_np = ok.numpy()
    report_unreadable(files, ok_np, str(root))
    label_t = torch.as_tensor(labels, dtype=torch.long)[ok]
    for k, cls in enumerate(classes):
        if not (label_t == k).any():
            raise UserError(f"class folder '{root / cls}' has no readable images.")
    if groups is not None:
        groups = groups[ok_np]
    if duplicates != "keep":
        from .duplicates import find_groups, merge_groups, phash

        near = find_groups(phash(images))
        groups = near if groups is None else merge_groups(groups, near)
    parts = split_indices(label_t, ratios, seed, groups, classes)
    ids = None if groups is None else torch.as_tensor(np.unique(groups, return_inverse=True)[1], dtype=torch.long)
    splits = {s: Split(images[torch.as_tensor(i, dtype=torch.long)], label_t[i],
                       groups=None if ids is None else ids[i]) for s, i in parts.items()}
    kept = [files[i].relative_to(root).as_posix() for i in np.flatnonzero(ok_np)]  # for the pre-flight summary
    info = DatasetInfo(source=str(root.resolve()), files=len(files), unreadable=int((~ok_np).sum()),
                       split_ratios=list(ratios), seed=seed,
                       group_key=group_regex or (str(group_csv) if group_csv else None), duplicates_mode=duplicates,
                       split_files={s: [kept[j] for j in i] for s, i in parts.items()})
    task: Task = "binary" if len(classes) == 2 else "multiclass"
    return Dataset(name or f"folder:{path}", task, classes, **splits, info=info)
