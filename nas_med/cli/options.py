"""Options shared by several commands, declared once."""
from __future__ import annotations

import functools

import click

from ..search.names import DEFAULT_STORAGE


def data_options(func):
    """--data-root, --size, --channels, --fraction, --seed: how a dataset is loaded."""

    @click.option("--data-root", type=click.Path(file_okay=False), default=None,
                  help="Folder holding the dataset files (MedMNIST .npz, RadImageNet tree).")
    @click.option("--size", type=int, default=None,
                  help="Resize images to SIZE x SIZE pixels (8-1024; MedMNIST reads the catalog file of that "
                       "size, else the next larger of 28/64/128/224).")
    @click.option("--channels", type=click.Choice(["1", "3"]), default=None, help="Convert to 1 or 3 channels.")
    @click.option("--fraction", type=float, default=1.0, show_default=True,
                  help="Fraction of the training split to keep, in (0, 1].")
    @click.option("--seed", type=int, default=0, show_default=True, help="Seed of splits, fraction and search.")
    @functools.wraps(func)
    def wrapper(*args, channels=None, **kwargs):
        return func(*args, channels=int(channels) if channels else None, **kwargs)

    return wrapper


def _ratios(ctx: click.Context, param: click.Parameter, value: str | None):
    from ..data.splits import parse_ratios

    return None if value is None else parse_ratios(value)


def source_options(func):
    """--cache-dir, --download/--no-download, --split-ratios, --group-regex, --group-csv, --duplicates: where data
    comes from and how it is split (kept apart from ``data_options``, whose keys other commands forward)."""

    @click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
                  help="Cache of downloads and prepared tensors. [default: $NAS_MED_CACHE or ~/.cache/nas-med]")
    @click.option("--download/--no-download", default=True, show_default=True,
                  help="Download a missing MedMNIST file into the cache.")
    @click.option("--split-ratios", default=None, callback=_ratios, metavar="TRAIN,VAL,TEST",
                  help="folder: datasets: split shares. [default: 0.7,0.15,0.15]")
    @click.option("--group-regex", default=None,
                  help="folder: datasets: regex on each file's path within its class folder; the first group "
                       "(or whole match) is the patient id, kept in one split.")
    @click.option("--group-csv", type=click.Path(dir_okay=False), default=None,
                  help="folder: datasets: CSV with columns filename,group giving each file's patient id.")
    @click.option("--duplicates", default="group", show_default=True, metavar="keep|group|drop",
                  help="Near-duplicate images (perceptual hash): keep (report only); group (folders: each group "
                       "of copies in one split, as a patient; fixed splits such as MedMNIST stay as published); "
                       "drop (fixed splits: val/test copies of training images removed, counts stated).")
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


def storage_option(what: str = "Storage URL", **kwargs):
    """--storage with the default storage named in its help (``what`` says what the value may be)."""
    return click.option("--storage", default=None, help=f"{what}. [default: {DEFAULT_STORAGE}]", **kwargs)


def recipe_options(func, folds: bool = True):
    """``--recipe final|search`` and (with ``folds``) ``--folds K`` (see ``nas_med.recipe``). Checked by the
    library, so a bad value is one line and exit 2."""
    if folds:
        func = click.option("--folds", default=None, metavar="K",
                            help="Train a K-fold ensemble of the final recipe on train + val and export one model "
                                 "averaging the K members' probabilities (default: the study's recipe, 1).")(func)
    return click.option("--recipe", default="final", show_default=True,
                        help="final: train with the study's final recipe (AdamW, warm-up + cosine, 60 epochs; "
                             "see studies/README.md); search: the trial's own short search recipe.")(func)


def parse_folds(text: str | None) -> int | None:
    from ..recipe import check_folds

    if text is None:
        return None
    try:
        value = int(str(text).strip())
    except ValueError:
        value = text
    return check_folds(value)
