"""The two fidelities of one pipeline: the search recipe ranks candidates, the final recipe trains what ships.

``FinalRecipe`` turns a trial's stored (search) ``TrainConfig`` into the config of the model a user gets: the same
architecture, batch size, class weighting, device and precision, with the final optimiser, schedule, epochs,
patience and augmentation. Every baseline the chosen model is compared with gets the same final recipe, so the
comparison is fair. ``--recipe search`` keeps the trial's own config (the old behaviour).

``lr`` and ``augment`` may list several values; the one with the lowest validation loss is kept, per model
(``nas_med.final.settle``). The defaults (AdamW lr 1e-3, weight decay 0.05, 10 % linear warm-up then cosine decay,
60 epochs, batch 32, the best epoch by validation loss, a stop after 15 epochs without a lower one, augmentation ``none`` or ``light`` settled on validation,
one network rather than a fold ensemble) were measured on BreastMNIST 28 and 64 px: the figures, and what was
tried and not kept, are in benchmarks/README.md ("The final recipe's defaults")."""
from __future__ import annotations

import itertools
import math
import re
from dataclasses import asdict, dataclass, fields, replace

from ..augment import AUTO, AUTO_CHOICES, check_policy
from ..errors import UserError
from ..schedule import OPTIMIZERS, SCHEDULES
from ..train import TrainConfig
from .flips import check_flip_mode

__all__ = ["CHOOSABLE", "DISTIL_GRID", "RECIPES", "FinalRecipe", "apply_recipe", "check_folds", "check_recipe_name",
           "parse_distil"]

RECIPES = ("final", "search")
DISTIL_GRID = ("off", "T=4,w=0.5")  # with and without the study's best as teacher, settled on validation
CHOOSABLE = ("lr", "augment")  # a list of values: each is tried on validation (nas_med.final.settle)


@dataclass(frozen=True)
class FinalRecipe:
    """How the shipped model (and every baseline beside it) is trained."""

    epochs: int = 60
    lr: float | tuple[float, ...] = 1e-3
    weight_decay: float = 0.05
    optimizer: str = "adamw"
    schedule: str = "cosine"
    warmup: float = 0.1
    batch_size: int = 32
    augment: str | tuple[str, ...] = AUTO_CHOICES  # chosen on validation per model (nas_med.final.settle); "auto" too
    flips: bool = True
    patience: int = 15  # stop after 15 epochs without a lower validation loss (0: train every epoch)
    folds: int = 1  # K > 1: a K-fold ensemble on train + val (nas_med.final.ensemble)
    test_flips: str = "auto"  # average over horizontal flips at test time: auto (settled on validation), on, off
    distil: str | tuple[str, ...] = DISTIL_GRID  # soft targets of the study's best (nas_med.final.teacher), or not

    def __post_init__(self) -> None:
        if self.augment == AUTO:
            object.__setattr__(self, "augment", AUTO_CHOICES)
        for name in CHOOSABLE:  # a YAML or JSON list: a tuple of candidates; one value: fixed
            value = getattr(self, name)
            if isinstance(value, (list, tuple)):
                if not value or len(set(value)) != len(value):
                    raise UserError(f"final recipe: {name} must list at least one value, each once; got "
                                    f"{list(value)!r}.")
                object.__setattr__(self, name, value[0] if len(value) == 1 else tuple(value))
        object.__setattr__(self, "test_flips", check_flip_mode(self.test_flips))
        distil = tuple(self.distil) if isinstance(self.distil, (list, tuple)) else (self.distil,)
        distil = tuple("off" if d is False else d for d in distil)  # YAML reads off as false
        if not distil or len(set(distil)) != len(distil):
            raise UserError(f"final recipe: distil must list at least one value, each once; got {list(distil)!r}.")
        for d in distil:
            parse_distil(d)
        object.__setattr__(self, "distil", distil[0] if len(distil) == 1 else distil)
        lrs = tuple(_number(lr) for lr in self.choices("lr"))  # YAML reads 1e-3 (no dot) as a string
        object.__setattr__(self, "lr", lrs[0] if len(lrs) == 1 else lrs)
        self.check()

    def choices(self, name: str) -> tuple:
        """The candidate values of ``name`` (one for a fixed value)."""
        value = getattr(self, name)
        return value if isinstance(value, tuple) else (value,)

    def variants(self) -> list[dict]:
        """Every combination of the candidate ``lr`` and ``augment`` values (and ``distil``, unless it is only
        ``off``), first value first."""
        names = CHOOSABLE + (("distil",) if self.distils() else ())
        return [dict(zip(names, combo)) for combo in itertools.product(*(self.choices(n) for n in names))]

    def distils(self) -> bool:
        """Whether a teacher is needed: some ``distil`` value is not ``off``."""
        return any(parse_distil(d) is not None for d in self.choices("distil"))

    def check(self) -> None:
        for policy in self.choices("augment"):
            check_policy(policy, auto=False)
        if self.optimizer not in OPTIMIZERS:
            raise UserError(f"final recipe: unknown optimizer '{self.optimizer}' (valid: {', '.join(OPTIMIZERS)}).")
        if self.schedule not in SCHEDULES:
            raise UserError(f"final recipe: unknown schedule '{self.schedule}' (valid: {', '.join(SCHEDULES)}).")
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise UserError(f"final recipe: epochs must be a positive integer, got {self.epochs!r}.")
        if not isinstance(self.batch_size, int) or self.batch_size < 2:
            raise UserError(f"final recipe: batch_size must be an integer >= 2, got {self.batch_size!r}.")
        if not 0 <= float(self.warmup) < 1:  # (NaN fails too)
            raise UserError(f"final recipe: warmup must be in [0, 1), got {self.warmup!r}.")
        if not all(_positive(lr) for lr in self.choices("lr")) or not 0 <= float(self.weight_decay) < math.inf:
            raise UserError(f"final recipe: lr must be > 0 and weight_decay >= 0 (both finite), got {self.lr!r}, "
                            f"{self.weight_decay!r}.")
        if not isinstance(self.patience, int) or self.patience < 0:
            raise UserError(f"final recipe: patience must be an integer >= 0, got {self.patience!r}.")
        check_folds(self.folds)
        if self.test_flips == "on" and not self.flips:
            raise UserError("final recipe: test_flips on needs flips allowed (flips: false says laterality "
                            "matters).")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> FinalRecipe:
        """A recipe from a mapping (a recipe file's ``final`` section, or a study's stored one); unknown keys are
        a UserError naming the valid ones."""
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"final recipe: unknown key '{unknown[0]}' (valid: {', '.join(sorted(known))}).")
        for key in ("epochs", "batch_size", "patience", "folds"):  # 60, "60", 6e1: one number, read one way
            if key in data:
                data[key] = _whole(_number(data[key]))
        for key in ("warmup", "weight_decay"):
            if key in data:
                data[key] = _number(data[key])
        try:
            return cls(**data)
        except UserError:
            raise
        except (TypeError, ValueError) as exc:
            raise UserError(f"final recipe: {exc}") from None


def _number(x):
    """``x`` as a float when it is a string that reads as one (else unchanged, for ``check`` to refuse)."""
    if isinstance(x, str):
        try:
            return float(x)
        except ValueError:
            return x
    return x


def _whole(x):
    """``x`` as an int when it is a float with an integral value (else unchanged, for ``check`` to refuse)."""
    return int(x) if isinstance(x, float) and x.is_integer() else x


def _positive(x) -> bool:
    return not isinstance(x, bool) and isinstance(x, (int, float)) and 0 < x < math.inf


_DISTIL = re.compile(r"^\s*T\s*=\s*([^,\s]+)\s*,\s*w\s*=\s*([^,\s]+)\s*$", re.IGNORECASE)


def parse_distil(value) -> tuple[float, float] | None:
    """(temperature T, weight w) of a ``distil`` value ``"T=4,w=0.5"``; None for ``off``."""
    if value in ("off", False, None):
        return None
    match = _DISTIL.match(value) if isinstance(value, str) else None
    try:
        t, w = (float(match.group(1)), float(match.group(2))) if match else (math.nan, math.nan)
    except ValueError:
        t = w = math.nan
    if not (0 < t <= 100 and 0 < w <= 1):
        raise UserError(f"final recipe: distil must be off or 'T=<temperature>,w=<weight>' with 0 < T <= 100 and "
                        f"0 < w <= 1, got {value!r}.")
    return t, w


def check_folds(folds) -> int:
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 1 or folds > 20:
        raise UserError(f"--ensemble (a recipe's folds) must be an integer from 1 (a single model) to 20, got "
                        f"{folds!r}.")
    return folds


def check_recipe_name(name: str) -> str:
    if name not in RECIPES:
        raise UserError(f"unknown --recipe '{name}' (valid: {', '.join(RECIPES)}, or a recipe file for search).")
    return name


def apply_recipe(cfg: TrainConfig, recipe: FinalRecipe | None, variant: dict | None = None) -> TrainConfig:
    """``cfg`` (a trial's search config) trained with ``recipe``; None keeps ``cfg`` (``--recipe search``).
    Where the recipe lists several ``lr`` or ``augment`` values, ``variant`` picks one of ``recipe.variants()``
    (default: the first; ``nas_med.final.settle`` chooses on validation)."""
    if recipe is None:
        return cfg
    variant = variant or recipe.variants()[0]
    return replace(cfg, epochs=recipe.epochs, lr=float(variant["lr"]), weight_decay=float(recipe.weight_decay),
                   optimizer=recipe.optimizer, schedule=recipe.schedule, warmup=float(recipe.warmup),
                   batch_size=recipe.batch_size, augment=variant["augment"], flips=recipe.flips,
                   patience=recipe.patience)
