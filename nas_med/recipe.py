"""The two fidelities of one pipeline: the search recipe ranks candidates, the final recipe trains what ships.

``FinalRecipe`` turns a trial's stored (search) ``TrainConfig`` into the config of the model a user gets: the same
architecture, batch size, class weighting, device and precision, with the final optimiser, schedule, epochs,
patience and augmentation. Every baseline the chosen model is compared with gets the same final recipe, so the
comparison is fair. ``--recipe search`` keeps the trial's own config (the old behaviour).

Defaults, measured on BreastMNIST 28 px (benchmarks/quality.py; DESIGN.md "Second-wave notes"):
AdamW lr 2e-3 (the hand-written 72 k recipe that tests at 0.912 mean), weight decay 0.05 (AdamW's usual decoupled
decay; at 1e-4 it did nothing: lr x wd = 2e-7 a step), linear warm-up over
10 % of the steps then cosine decay to 0 (the one-cycle shape), 60 epochs, batch 32, the weights of the epoch with
the lowest validation loss (best epochs 11-22 of 60 without augmentation at 28 px, 30-43 with ``light``), no
patience stop, augmentation
``auto``: none below 64 px, ``light`` from 64 px. Measured with the fixed 72,146-parameter CNN (three ``double``
stages 16-32-64), seeds 0-2, bf16, loaded 2-core machine: 28 px none 0.902/0.910/0.915 (mean 0.909), light
0.899/0.884/0.894 (0.892); 64 px none 0.891/0.881/0.886 (0.886), light 0.926/0.900/0.899 (0.909). A 5-fold
ensemble (28 px, one seed): 0.910 for that CNN, 0.932 for quality.py's 26 k choice; 5x the training, so opt-in
(``folds`` 1 by default, ``--folds 5``).
Weight decay, on the 26,474-parameter architecture ``benchmarks/quality.py`` chose at 28 px (``retrain_and_test``
with ``apply_recipe(TrainConfig(), FinalRecipe(...))``, seeds 0-2): 1e-4 test 0.906 (validation 0.953), 0.05 test
0.916 (validation 0.960); EMA of the weights (0.99) 0.903, 100 epochs 0.894, lr 1e-3 0.907,
fp32 instead of bf16 0.905, ``light`` augmentation 0.891: within the seeds' spread (sd ~0.015), none kept."""
from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, fields, replace

from .augment import AUTO, AUTO_CHOICES, check_policy
from .errors import UserError
from .schedule import OPTIMIZERS, SCHEDULES
from .train import TrainConfig

__all__ = ["CHOOSABLE", "RECIPES", "FinalRecipe", "apply_recipe", "check_folds", "check_recipe_name"]

RECIPES = ("final", "search")
CHOOSABLE = ("lr", "augment")  # a list of values: each is tried on validation (nas_med.settle)


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
    augment: str | tuple[str, ...] = AUTO_CHOICES  # chosen on validation per model (nas_med.settle); "auto" too
    flips: bool = True
    patience: int = 0
    folds: int = 1  # K > 1: a K-fold ensemble on train + val (nas_med.ensemble)

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
        self.check()

    def choices(self, name: str) -> tuple:
        """The candidate values of ``name`` (one for a fixed value)."""
        value = getattr(self, name)
        return value if isinstance(value, tuple) else (value,)

    def variants(self) -> list[dict]:
        """Every combination of the candidate ``lr`` and ``augment`` values, first value first."""
        names = CHOOSABLE
        return [dict(zip(names, combo)) for combo in itertools.product(*(self.choices(n) for n in names))]

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
        if not 0 <= float(self.warmup) < 1:
            raise UserError(f"final recipe: warmup must be in [0, 1), got {self.warmup!r}.")
        if not all(_positive(lr) for lr in self.choices("lr")) or not float(self.weight_decay) >= 0:
            raise UserError(f"final recipe: lr must be > 0 and weight_decay >= 0, got {self.lr!r}, "
                            f"{self.weight_decay!r}.")
        if not isinstance(self.patience, int) or self.patience < 0:
            raise UserError(f"final recipe: patience must be an integer >= 0, got {self.patience!r}.")
        check_folds(self.folds)

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
        try:
            return cls(**data)
        except (TypeError, ValueError) as exc:
            raise UserError(f"final recipe: {exc}") from None


def _positive(x) -> bool:
    return not isinstance(x, bool) and isinstance(x, (int, float)) and x > 0


def check_folds(folds) -> int:
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 1 or folds > 20:
        raise UserError(f"--folds must be an integer from 1 (a single model) to 20, got {folds!r}.")
    return folds


def check_recipe_name(name: str) -> str:
    if name not in RECIPES:
        raise UserError(f"unknown --recipe '{name}' (valid: {', '.join(RECIPES)}, or a recipe file for search).")
    return name


def apply_recipe(cfg: TrainConfig, recipe: FinalRecipe | None, variant: dict | None = None) -> TrainConfig:
    """``cfg`` (a trial's search config) trained with ``recipe``; None keeps ``cfg`` (``--recipe search``).
    Where the recipe lists several ``lr`` or ``augment`` values, ``variant`` picks one of ``recipe.variants()``
    (default: the first; ``nas_med.settle`` chooses on validation)."""
    if recipe is None:
        return cfg
    variant = variant or recipe.variants()[0]
    return replace(cfg, epochs=recipe.epochs, lr=float(variant["lr"]), weight_decay=float(recipe.weight_decay),
                   optimizer=recipe.optimizer, schedule=recipe.schedule, warmup=float(recipe.warmup),
                   batch_size=recipe.batch_size, augment=variant["augment"], flips=recipe.flips,
                   patience=recipe.patience)
