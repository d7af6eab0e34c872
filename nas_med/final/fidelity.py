"""The choice made at the final fidelity: the near-best candidates trained with the final recipe before the
minimalist rule picks.

The search ranks candidates with its short recipe; two near-best ones can swap places once trained with the final
recipe. ``choose_at_final_fidelity`` takes the candidates the rule would compare (the trials ``nas-med confirm``
kept, when the study is confirmed; otherwise the rule's near-best set on validation AUC), trains each once with
the final recipe (its own seed, the recipe's first lr and augmentation, no teacher: the same recipe for all, so
the comparison is fair) and lets the rule pick on those runs' validation AUCs. Cost: one final-recipe run per
candidate (none with a single candidate)."""
from __future__ import annotations

import logging
from dataclasses import replace

import optuna

from ..data.types import Dataset
from ..fit import fit
from ..progress import emit
from ..search.records import trial_name, trial_recipe
from ..select import Choice, Rule, completed, confirmed_aucs, pareto_front, study_minimalist, value
from .recipe import FinalRecipe, apply_recipe
from .retrain import on_device

__all__ = ["FINAL_KIND", "MAX_FIDELITY_CANDIDATES", "choose_at_final_fidelity"]

log = logging.getLogger(__name__)

FINAL_KIND = "final-recipe validation"  # how the reason names the AUCs the rule compared
MAX_FIDELITY_CANDIDATES = 5  # the best ones by the search's figure, as confirm caps its candidates


def choose_at_final_fidelity(study: optuna.Study, data: Dataset, recipe: FinalRecipe, rule: Rule | None = None,
                             device: str | None = None, precision: str | None = None) -> tuple[Choice, dict]:
    """(the minimalist choice on the final recipe's validation AUCs, the record: fidelity, candidates with their
    search and final validation AUC and loss, the search's own choice)."""
    rule = rule or Rule()
    search_choice = study_minimalist(study, rule)
    if search_choice is None:
        from ..errors import UserError

        raise UserError(f"study '{study.study_name}' has no completed candidate to choose from.")
    confirmed = confirmed_aucs(study)
    front = {t.number: t for t in pareto_front(completed(study))}
    numbers = list(confirmed) if confirmed is not None else list(search_choice.eligible)
    by_search = sorted((front[n] for n in numbers if n in front),
                       key=lambda t: -(confirmed[t.number] if confirmed is not None else value(t, "auc")))
    candidates = by_search[:MAX_FIDELITY_CANDIDATES]
    searched = "cross-validated" if confirmed is not None else "validation"
    record = {"search_choice": search_choice.trial.number, "search_kind": searched, "candidates": []}
    if len(candidates) < 2:
        record["fidelity"] = "search"
        record["why"] = "one near-best candidate: nothing to compare at the final fidelity"
        return search_choice, record
    aucs = {}
    for i, trial in enumerate(candidates):
        spec, cfg = trial_recipe(trial)
        cfg = on_device(apply_recipe(cfg, replace(recipe, distil="off", folds=1)), device, precision)
        name = trial_name(trial)
        emit("fidelity", i + 1, len(candidates), f"{name}: near-best candidate {i + 1} of {len(candidates)} "
             f"trained once with the final recipe ({cfg.epochs} epochs) before the rule picks")
        result = fit(spec, data, cfg, label=f"{name}: final fidelity")
        aucs[trial.number] = float(result.val.get("auc", float("nan")))
        record["candidates"].append({"trial": trial.number, "params": int(value(trial, "params")),
                                     "search_auc": (confirmed or {}).get(trial.number, value(trial, "auc")),
                                     "final_val_auc": aucs[trial.number],
                                     "final_val_loss": float(result.val.get("loss", float("nan")))})
        del result
    choice = rule.pick(candidates, aucs, FINAL_KIND)
    record["fidelity"] = "final"
    record["why"] = (f"the {len(candidates)} near-best candidates (by {searched} AUC) each trained once with the "
                     f"final recipe; the rule picked on their validation AUCs"
                     + ("" if choice.trial.number == search_choice.trial.number else
                        f" (the search's fidelity would have picked trial {search_choice.trial.number})"))
    log.info("final fidelity: %s", record["why"])
    return choice, record
