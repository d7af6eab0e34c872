"""Named datasets: one entry point, ``load_dataset``, for every source a user can name."""
from __future__ import annotations

import logging
from pathlib import Path

from ..errors import UserError, look_up
from . import synthetic
from .preprocess import prepare
from .splits import apply_fraction
from .types import Dataset

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
                 group_regex: str | None = None, group_csv: str | Path | None = None) -> Dataset:
    """Load ``name`` as uint8 tensors at ``size`` px with ``channels`` channels and ``fraction`` of the training split.

    ``synthetic``: the embedded default; a MedMNIST 2D name (read from ``data_root`` or the cache, downloaded
    when missing); ``folder:PATH``: one sub-folder per class; ``radimagenet-msk``: the paper's 5-class MR task
    (``data_root`` required). Bad input raises UserError naming the value.
    """
    if not 0 < fraction <= 1:
        raise UserError(f"--fraction must be in (0, 1], got {fraction}.")
    if name == "synthetic":
        data = synthetic.load(size=size or 64, seed=seed)
    elif name.startswith(FOLDER_PREFIX):
        from . import folder

        data = folder.load(name[len(FOLDER_PREFIX):], seed=seed, ratios=split_ratios or (0.7, 0.15, 0.15),
                           group_regex=group_regex, group_csv=group_csv, size=size, cache_dir=cache_dir)
    elif name == RADIMAGENET:
        from . import radimagenet

        data = radimagenet.load(data_root, fraction=fraction, seed=seed, size=size, cache_dir=cache_dir)
        return prepare(data, size, channels)  # the protocol applies the fraction to train and val itself
    else:
        from . import medmnist

        look_up(name, [n for n in dataset_names() if n != FOLDER_PREFIX + "PATH"] + [FOLDER_PREFIX + "PATH"],
                "dataset")
        data = medmnist.load(name, size=size, data_root=data_root, cache_dir=cache_dir, download=download)
    data = data.with_splits(train=apply_fraction(data.train, fraction, seed))
    data.info.update(fraction=fraction)
    return prepare(data, size, channels)
