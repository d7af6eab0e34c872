"""Named datasets: one entry point, ``load_dataset``, for every source a user can name."""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from ..errors import UserError, look_up
from . import synthetic
from .duplicates import DEFAULT_MODE, check_mode, drop_copies_of_earlier_splits, report_for
from .positive import positive_index
from .preprocess import check_size_channels, prepare
from .splits import apply_fraction, check_fraction
from .types import Dataset
from .validate import check_dataset

log = logging.getLogger(__name__)

RADIMAGENET = "radimagenet-msk"
FOLDER_PREFIX = "folder:"


def medmnist_names() -> list[str]:
    """Every 2D dataset of the medmnist package's catalog."""
    from .medmnist import names

    return names()


def dataset_names() -> list[str]:
    """Every name ``load_dataset`` accepts (``folder:PATH`` stands for any image folder)."""
    return ["synthetic", RADIMAGENET, *medmnist_names(), FOLDER_PREFIX + "PATH"]


def load_dataset(name: str = "synthetic", *, data_root: str | Path | None = None, size: int | None = None,
                 channels: int | None = None, fraction: float = 1.0, seed: int = 0,
                 cache_dir: str | Path | None = None, download: bool = True,
                 split_ratios: tuple[float, float, float] | None = None,
                 group_regex: str | None = None, group_csv: str | Path | None = None,
                 duplicates: str = DEFAULT_MODE) -> Dataset:
    """Load ``name`` as uint8 tensors at ``size`` px with ``channels`` channels and ``fraction`` of the training split.

    ``synthetic``: the embedded default; a MedMNIST 2D name (read from ``data_root`` or the cache, downloaded
    when missing unless ``download`` is False; any ``size`` is resized from the nearest larger catalog size);
    ``folder:PATH``: one sub-folder per class, split ``split_ratios`` (default 0.7/0.15/0.15) with an optional
    group key (``group_regex`` or ``group_csv``); ``radimagenet-msk``: the paper's 5-class MR task
    (``data_root`` required, fixed 65/25/10 protocol). ``duplicates`` (keep|group|drop, see
    ``data.duplicates``) says what near-duplicate images do to the splits; the groups found are in
    ``info.duplicates`` (a ``DuplicateReport``) for every source. Bad input raises UserError naming the value; the
    prepared dataset is checked as a whole by ``validate.check_dataset`` (labels, counts, classes per split).
    """
    check_fraction(fraction)
    check_mode(duplicates)
    check_size_channels(size, channels)
    for what, value in (("--dataset", name), ("--data-root", data_root), ("--group-csv", group_csv)):
        try:
            str(value).encode("utf-8")  # a study stores it; a path that is not text cannot be stored or shown
        except UnicodeEncodeError:
            shown = str(value).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            raise UserError(f"{what} '{shown}' is not UTF-8 text; rename the folder or file.") from None
    if data_root is not None and not Path(data_root).expanduser().is_dir():  # never fall back to the cache silently
        what = "is not a folder" if Path(data_root).expanduser().exists() else "does not exist"
        raise UserError(f"--data-root '{data_root}' {what}.")
    if split_ratios is not None and not name.startswith(FOLDER_PREFIX):
        raise UserError(f"--split-ratios applies to folder: datasets only, not '{name}' (it has fixed splits).")
    if (group_regex or group_csv) and not name.startswith(FOLDER_PREFIX):
        raise UserError(f"--group-regex/--group-csv apply to folder: datasets only, not '{name}'.")
    if name == "synthetic":
        data = synthetic.load(size=size or synthetic.DEFAULT_SIZE, seed=seed)
    elif name.startswith(FOLDER_PREFIX):
        from . import folder

        data = folder.load(name[len(FOLDER_PREFIX):], seed=seed, ratios=split_ratios or folder.DEFAULT_RATIOS,
                           group_regex=group_regex, group_csv=group_csv, size=size, channels=channels,
                           cache_dir=cache_dir, name=name, duplicates=duplicates)
    elif name == RADIMAGENET:
        from . import radimagenet

        data = radimagenet.load(data_root, fraction=fraction, seed=seed, size=size, channels=channels,
                                cache_dir=cache_dir)
        data, dropped = _drop_copies(data, duplicates)
        data = check_dataset(prepare(data, size, channels))  # the protocol applies the fraction to train/val
        return _with_duplicates(data, duplicates, dropped)
    else:
        from . import medmnist

        if name in medmnist.catalog():
            medmnist.info(name)  # a 3D name gets its own message
        look_up(name, [n for n in dataset_names() if n != FOLDER_PREFIX + "PATH"] + [FOLDER_PREFIX + "PATH"],
                "dataset")
        data = medmnist.load(name, size=size, data_root=data_root, cache_dir=cache_dir, download=download)
    data, dropped = _drop_copies(data, duplicates)
    data = data.with_splits(train=apply_fraction(data.train, fraction, seed))
    data.info.fraction = fraction
    data = check_dataset(prepare(data, size, channels))
    data.info.positive = positive_index(data.task, name, data.classes)  # None unless binary
    return _with_duplicates(data, duplicates, dropped)


def _drop_copies(data: Dataset, mode: str) -> tuple[Dataset, dict[str, int]]:
    """Fixed splits under ``--duplicates drop``: val/test without the near copies of earlier splits' images.
    Folders (split by group instead) and the other modes pass through."""
    if mode != "drop" or data.info.split_files is not None:
        return data, {}
    keep = drop_copies_of_earlier_splits({s: x.images for s, x in data.splits.items()})
    dropped = {s: len(data.splits[s]) - len(k) for s, k in keep.items() if len(k) < len(data.splits[s])}
    for split, n in dropped.items():
        log.warning("--duplicates drop: %d %s image(s) copying an image of an earlier split removed", n, split)
    return data.with_splits(**{s: data.splits[s].subset(torch.as_tensor(keep[s], dtype=torch.long))
                               for s in dropped}), dropped


def _with_duplicates(data: Dataset, mode: str, dropped: dict[str, int]) -> Dataset:
    """``data`` with its near-duplicate report in ``info.duplicates``."""
    report = report_for({s: x.images for s, x in data.splits.items()}, {s: x.labels for s, x in data.splits.items()},
                        names=data.info.split_files, mode=mode, dropped=dropped,
                        fixed_splits=data.info.split_files is None)
    data.info.duplicates = report
    return data
