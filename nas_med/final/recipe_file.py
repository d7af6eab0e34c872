"""Recipe files (``studies/NAME.yaml``): a study's dataset, size, fraction, space, search budget and final recipe.

```yaml
search:            # any ``nas-med search`` option (its long name, dashes or underscores)
  dataset: breastmnist
  size: 28
  trials: 30
final:             # nas_med.recipe.FinalRecipe
  epochs: 60
  augment: none
```
``nas-med search --recipe studies/NAME.yaml`` takes the ``search`` section for every option not given on the
command line and stores the ``final`` section on the study (``records.FINAL_RECIPE``), where ``export``,
``front --retrain``, ``sweep`` and ``report`` read it (``study_recipe``). A bad file is a UserError naming the
problem."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import optuna
import yaml

from ..errors import UserError, read_text_limited
from ..search import records
from ..space import SpaceLoader
from .recipe import FinalRecipe, check_folds, check_recipe_name

__all__ = ["SEARCH_KEYS", "RecipeFile", "read_recipe_file", "store_recipe", "study_recipe"]

SEARCH_KEYS = ("dataset", "data_root", "size", "channels", "fraction", "seed", "space", "trials", "timeout", "study",
               "sampler", "pruner", "epochs", "baselines", "cam_images", "cam_method", "class_weighting", "precision")


class RecipeFile:
    def __init__(self, path: Path, search: dict, final: FinalRecipe):
        self.path, self.search, self.final = path, search, final


def read_recipe_file(path: str | Path) -> RecipeFile:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"recipe file '{path}' does not exist." if not p.exists() else f"'{path}' is not a file.")
    try:
        data = yaml.load(read_text_limited(p, 1 << 20, f"recipe file '{path}'"), Loader=SpaceLoader)  # noqa: S506 - a SafeLoader
    except (yaml.YAMLError, RecursionError) as exc:
        raise UserError(f"recipe file '{path}' is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise UserError(f"recipe file '{path}': expected a mapping with 'search' and 'final', got {type(data).__name__}.")
    unknown = sorted(set(data) - {"search", "final", "description"})
    if unknown:
        raise UserError(f"recipe file '{path}': unknown section '{unknown[0]}' (valid: search, final, description).")
    search = data.get("search") or {}
    if not isinstance(search, dict):
        raise UserError(f"recipe file '{path}': 'search' must be a mapping.")
    search = {str(k).replace("-", "_"): v for k, v in search.items()}
    bad = sorted(set(search) - set(SEARCH_KEYS))
    if bad:
        raise UserError(f"recipe file '{path}': unknown search option '{bad[0]}' (valid: {', '.join(SEARCH_KEYS)}).")
    if isinstance(search.get("baselines"), (list, tuple)):
        search["baselines"] = ",".join(str(b) for b in search["baselines"])
    if search.get("data_root") is not None:  # relative to the recipe file's folder's parent (the project root)
        root = Path(str(search["data_root"]))
        search["data_root"] = str(root if root.is_absolute() else (p.resolve().parent.parent / root))
    final = data.get("final") or {}
    if not isinstance(final, dict):
        raise UserError(f"recipe file '{path}': 'final' must be a mapping.")
    try:
        recipe = FinalRecipe.from_dict(final)
    except UserError as exc:
        raise UserError(f"recipe file '{path}': {exc}") from None
    return RecipeFile(p, search, recipe)


def store_recipe(study: optuna.Study, recipe: RecipeFile) -> None:
    """Keep the file's final recipe on the study for the later commands."""
    study.set_user_attr(records.FINAL_RECIPE, recipe.final.to_dict())
    study.set_user_attr(records.RECIPE_FILE, {"path": str(recipe.path), "name": recipe.path.stem})


def study_recipe(study: optuna.Study, recipe: str | FinalRecipe | None = "final",
                 folds: int | None = None) -> FinalRecipe | None:
    """Which recipe trains ``study``'s shipped model: ``final`` (the study's stored final recipe, from the recipe
    file it was started with, else ``FinalRecipe()``'s defaults), ``search`` (None: each trial's own search config)
    or a FinalRecipe; ``folds`` replaces its fold count."""
    if recipe is None or isinstance(recipe, FinalRecipe):
        out = recipe
    elif check_recipe_name(recipe) == "search":
        out = None
    else:
        out = FinalRecipe.from_dict(study.user_attrs.get(records.FINAL_RECIPE))
    if folds is not None:
        check_folds(folds)
        if out is None and folds > 1:
            raise UserError("--ensemble trains the final recipe's fold ensemble; it cannot be used with --recipe "
                            "search.")
        if out is not None:
            out = replace(out, folds=folds)
    return out
