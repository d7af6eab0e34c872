"""Which recipe trains a study's shipped model: ``final`` (the study's stored final recipe, from the recipe file
it was started with, else ``FinalRecipe()``'s defaults) or ``search`` (each trial's own search config)."""
from __future__ import annotations

import optuna

from .errors import UserError
from .recipe import FinalRecipe, check_folds, check_recipe_name
from .search import records

__all__ = ["study_recipe"]


def study_recipe(study: optuna.Study, recipe: str | FinalRecipe | None = "final",
                 folds: int | None = None) -> FinalRecipe | None:
    """The FinalRecipe for ``study`` (None: the search recipe); ``folds`` replaces its fold count."""
    from dataclasses import replace

    if recipe is None or isinstance(recipe, FinalRecipe):
        out = recipe
    elif check_recipe_name(recipe) == "search":
        out = None
    else:
        out = FinalRecipe.from_dict(study.user_attrs.get(records.FINAL_RECIPE))
    if folds is not None:
        check_folds(folds)
        if out is None and folds > 1:
            raise UserError("--folds trains the final recipe's ensemble; it cannot be used with --recipe search.")
        if out is not None:
            out = replace(out, folds=folds)
    return out
