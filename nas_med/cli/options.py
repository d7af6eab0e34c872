"""Options shared by several commands, declared once."""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import click

from ..errors import UserError
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
    def wrapper(*args, channels=None, data_root=None, **kwargs):
        # absolute, so that a study that stores it can be exported or resumed from any folder
        root = None if data_root is None else str(Path(data_root).expanduser().absolute())
        return func(*args, channels=int(channels) if channels else None, data_root=root, **kwargs)

    return wrapper


def _ratios(ctx: click.Context, param: click.Parameter, value: str | None):
    if value is None:  # (the usual case: no torch imported while the command line is parsed)
        return None
    from ..data.splits import parse_ratios

    return parse_ratios(value)


def absolute_dataset(name: str) -> str:
    """``folder:REL`` as ``folder:/ABS`` (a study stores it: export, confirm and workers may run from another
    folder); any other name unchanged."""
    prefix = "folder:"
    if not name.startswith(prefix) or not name[len(prefix):].strip():
        return name
    return prefix + str(Path(name[len(prefix):]).expanduser().absolute())


def split_options(func):
    """--split-ratios, --group-regex, --group-csv, --duplicates: how a dataset is split (``search`` stores them)."""

    @click.option("--split-ratios", default=None, callback=_ratios, metavar="TRAIN,VAL,TEST",
                  help="folder: datasets: split shares. [default: 0.7,0.15,0.15]")
    @click.option("--group-regex", default=None,
                  help="folder: datasets: regex on each file's path within its class folder; the first group "
                       "(or whole match) is the patient id, kept in one split.")
    @click.option("--group-csv", type=click.Path(dir_okay=False), default=None,
                  help="folder: datasets: CSV with columns filename,group giving each file's patient id.")
    @click.option("--duplicates", default="group", show_default=True, metavar="keep|group|drop",
                  help="Near-duplicate images (perceptual hash): group (folders: each group of copies in one "
                       "split, as a patient; fixed splits such as MedMNIST stay as published, groups reported); "
                       "keep (report only); drop (fixed splits: val/test copies of earlier splits' images removed, "
                       "counts stated).")
    @functools.wraps(func)
    def wrapper(*args, group_csv=None, **kwargs):
        csv = None if group_csv is None else str(Path(group_csv).expanduser().absolute())  # stored: absolute
        return func(*args, group_csv=csv, **kwargs)

    return wrapper


def source_options(func):
    """--cache-dir, --download/--no-download and the ``split_options``: where data comes from and how an image
    folder is split (kept apart from ``data_options``, whose keys other commands forward)."""

    @click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
                  help="Cache of downloads and prepared tensors. [default: $NAS_MED_CACHE or ~/.cache/nas-med]")
    @click.option("--download/--no-download", default=True, show_default=True,
                  help="Download a missing MedMNIST file into the cache.")
    @split_options
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


def storage_option(what: str = "Storage URL", **kwargs):
    """--storage with the default storage named in its help (``what`` says what the value may be)."""
    return click.option("--storage", default=None, help=f"{what}. [default: {DEFAULT_STORAGE}]", **kwargs)


def recipe_options(func, folds: bool = True):
    """``--recipe final|search`` and (with ``folds``) ``--ensemble K``, old spelling ``--folds K``, apart from
    ``confirm --cv-folds`` (see ``nas_med.final.recipe``). Checked by the library: a bad value is one line, exit 2."""
    if folds:
        func = click.option("--folds", "old_folds", default=None, metavar="K", hidden=True,
                            help="Old spelling of --ensemble.")(func)
        func = click.option("--ensemble", default=None, metavar="K",
                            help="Train a K-fold ensemble of the final recipe on train + val and export one model "
                                 "averaging the K members' probabilities (default: the study's recipe, 1; old "
                                 "spelling: --folds).")(func)
    return click.option("--recipe", default="final", show_default=True,
                        help="final: train with the study's final recipe (AdamW, warm-up + cosine, 60 epochs; "
                             "see studies/README.md); search: the trial's own short search recipe.")(func)


def old_spelling(value, old_value, old: str, new: str, why: str):
    """``value``, or ``old_value`` given under the old option name ``old`` (with a note on stderr naming ``new``)."""
    if old_value is None:
        return value
    click.echo(f"Note: {old} is now {new} ({why}); {old} still works.", err=True)
    return old_value if value is None else value


def parse_folds(text: str | None) -> int | None:
    from ..final.recipe import check_folds

    if text is None:
        return None
    try:
        value = int(str(text).strip())
    except ValueError:
        value = text
    return check_folds(value)


# ---- every numeric option of every command, checked in one place ---------------------------------------------

MAX_SEED = 2**32 - 1  # numpy's and Optuna's samplers take seeds in [0, 2**32)
MAX_TRIALS = 1_000_000


@dataclass(frozen=True)
class Bound:
    """The values a numeric option takes: ``low``..``high`` (None: open); ``what`` replaces the wording."""

    low: float | None = None
    high: float | None = None
    what: str | None = None
    low_open: bool = False  # ``low`` itself is refused (e.g. a timeout of 0 seconds)


# by option name, or "<command> --name" where one command differs; an option named nowhere is still checked for a
# finite value and, if whole, for a 64-bit integer
BOUNDS: dict[str, Bound] = {
    "--seed": Bound(0, MAX_SEED),
    "--trials": Bound(1, MAX_TRIALS),
    "--trials-per-point": Bound(1, MAX_TRIALS),
    "--timeout": Bound(0, 10**9, "positive seconds (at most 10^9)", low_open=True),
    "--epochs": Bound(1, 100_000),
    "--cam-images": Bound(1, 100_000),
    "--workers": Bound(None, 1024),
    "--threads": Bound(1, 4096),
    "--trial-batch": Bound(0, 10_000),
    "--size": Bound(8, 1024, "between 8 and 1024 pixels"),
    "--fraction": Bound(0, 1, "in (0, 1]", low_open=True),
    "--seeds": Bound(1, 1000),
    "--bootstrap": Bound(1, 1_000_000),
    "--trial": Bound(0, 2**31 - 1),
    "--folds": Bound(None, 1000),
    "--max-candidates": Bound(1, 10_000),
    "--auc-tolerance": Bound(0, 1, "a number in [0, 1]"),
    "--target-sensitivity": Bound(0, 1, "in (0, 1]", low_open=True),
    "--threshold": Bound(0, 1, "in [0, 1]"),
    "--port": Bound(0, 65535, "in 0..65535"),
    "--n": Bound(1, 10_000),
    "--in-channels": Bound(1, 64),
    "--classes": Bound(1, 100_000),
    "arch --size": Bound(1, 4096),
}
_INT64 = Bound(-(2**63), 2**63 - 1)


def _bound(command: str, option: str) -> Bound:
    return BOUNDS.get(f"{command} {option}") or BOUNDS.get(option) or _INT64


class Number(click.ParamType):
    """A whole or real number within a ``Bound``; anything else is a UserError naming the option and the value
    (one line, exit 2), so ``nan``, ``inf``, ``1e400`` or ``10**12`` never reach the library."""

    def __init__(self, whole: bool, bound: Bound, option: str):
        self.whole, self.bound, self.option = whole, bound, option
        self.name = "integer" if whole else "float"

    def convert(self, value, param, ctx):
        if isinstance(value, bool):
            value = str(value)
        text = str(value).strip()
        try:
            number = float(text) if not isinstance(value, (int, float)) else value
            if self.whole:
                number = int(text, 10) if isinstance(value, str) and text.lstrip("+-").isdigit() else number
                if not (isinstance(number, int) or (math.isfinite(number) and float(number).is_integer())):
                    raise ValueError
                number = int(number)
        except (ValueError, OverflowError):
            kind = "a whole number" if self.whole else "a number"
            raise UserError(f"{self.option} must be {kind}, got '{text[:80]}'.") from None
        if not self.whole and not math.isfinite(number):
            raise UserError(f"{self.option} must be a finite number, got {text[:80]}.")
        b = self.bound
        below = b.low is not None and (number <= b.low if b.low_open else number < b.low)
        above = b.high is not None and number > b.high
        if below or above:
            shown = str(number) if len(str(number)) <= 40 else f"{str(number)[:20]}...({len(str(number))} digits)"
            if b.what:
                raise UserError(f"{self.option} must be {b.what}, got {shown}.")
            side = f"at least {b.low:,}" if below else f"at most {b.high:,}"
            raise UserError(f"{self.option} must be {side}, got {shown}.")
        return number


def check_numbers(group: click.Group, path: str = "") -> None:
    """Give every int/float option of every command below ``group`` a ``Number`` type with its ``BOUNDS``."""
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            check_numbers(command, f"{path} {name}".strip())
            continue
        for param in command.params:
            if not isinstance(param, click.Option) or isinstance(param.type, Number):
                continue
            kind = param.type
            whole = isinstance(kind, click.types.IntParamType)
            if not (whole or isinstance(kind, click.types.FloatParamType)):
                continue
            option = max(param.opts, key=len)
            bound = _bound(path or name, option)
            if isinstance(kind, (click.IntRange, click.FloatRange)):  # a declared range narrows the table's
                low = bound.low if kind.min is None else max(kind.min, bound.low if bound.low is not None
                                                             else kind.min)
                high = bound.high if kind.max is None else min(kind.max, bound.high if bound.high is not None
                                                               else kind.max)
                bound = Bound(low, high, None if (low, high) != (bound.low, bound.high) else bound.what,
                              bound.low_open)
            param.type = Number(whole, bound, option)


def read_option(param: click.Parameter, value, ctx: click.Context, where: str):
    """``value`` (from a file: YAML may give a number as text, or text as a number) read as the command line
    reads ``param``: the same type and bounds; UserError naming ``where`` otherwise."""
    if value is None:
        return None
    if isinstance(param.type, click.types.StringParamType) and isinstance(value, (dict, list)):
        raise UserError(f"{where} must be a text, got {type(value).__name__} {str(value)[:80]}.")
    try:
        if isinstance(param.type, click.Choice) or isinstance(param.type, click.Path):
            value = str(value)
        return param.type_cast_value(ctx, value)
    except UserError as exc:
        raise UserError(f"{where}: {exc}") from None
    except click.BadParameter as exc:
        raise UserError(f"{where}: {exc.format_message()}") from None
