"""The one entry point to the shipped model's training: ``train_final(study, trial, plan)``, which ``export``,
``front --retrain`` and ``sweep`` all call.

The sequence: the trial's spec and search config, the plan's final recipe applied to it (``recipe.apply_recipe``),
device and precision, the seeds (a count starts at the trial's own seed), the recipe's open choices settled on
validation (``settle``; with ``distil`` values, against the soft targets of the study's best front member,
``teacher``), then every seed trained and tested (``retrain.retrain_and_test``, reusing the settled
runs), or, with ``folds`` K > 1, a K-fold ensemble per seed on train + val pooled (``ensemble``)."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Sequence

import optuna
from optuna.trial import FrozenTrial

from ..data.splits import pooled
from ..data.types import Dataset
from ..search import records
from ..search.records import load_study_data, seed_list, trial_name, trial_recipe
from ..select import Choice, Rule, choose, completed, value
from .recipe import FinalRecipe, apply_recipe
from .recipe_file import study_recipe
from .retrain import TestReport, on_device, retrain_and_test
from .settle import settle, soft_for
from .teacher import best_front_member, distil_record, train_teacher

__all__ = ["FinalPlan", "retrain_study", "retrain_trial", "train_final", "training_data"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinalPlan:
    """How a chosen trial is trained and tested. ``recipe``: the final recipe (None: the trial's own search
    config); ``seeds``: a count K (the trial's own seed and the K-1 after it) or the seeds themselves."""

    recipe: FinalRecipe | None = field(default_factory=FinalRecipe)
    seeds: int | Sequence[int] = 3
    n_bootstrap: int = 1000
    device: str | None = None
    precision: str | None = None
    keep_model: bool = False

    @property
    def folds(self) -> int:
        """Members of each seed's fold ensemble (1: a single network)."""
        return 1 if self.recipe is None else self.recipe.folds


def training_data(data: Dataset, plan: FinalPlan) -> Dataset:
    """The data the plan's models are trained and tested on: train + val pooled for a fold ensemble."""
    return pooled(data) if plan.folds > 1 else data


def train_final(study: optuna.Study, trial: FrozenTrial | Choice, plan: FinalPlan,
                data: Dataset | None = None, teachers: dict | None = None) -> TestReport:
    """Train ``trial`` (or a Choice's trial) of ``study`` as ``plan`` says and test it (see the module docstring);
    ``data`` defaults to the study's dataset, loaded again. A recipe that distils trains the teacher once per
    ``teachers`` cache (give the same dict to several calls on one study and data); a model with more parameters
    than the teacher (a baseline such as ResNet-18) trains without one."""
    trial = trial.trial if isinstance(trial, Choice) else trial
    spec, cfg = trial_recipe(trial)
    data = data if data is not None else load_study_data(study)
    name = trial_name(trial)
    recipe, teacher = plan.recipe, None
    if recipe is not None and recipe.distils():  # the study's best, trained once for its soft targets
        best = best_front_member(study)
        if value(trial, "params") > value(best, "params"):  # a baseline larger than the teacher learns alone
            log.info("%s: not distilled: it has more parameters than the teacher %s", name, trial_name(best))
            recipe = replace(recipe, distil="off")
        else:
            teachers = {} if teachers is None else teachers
            key = (best.number, plan.folds, plan.device, plan.precision, replace(recipe, test_flips="off"))
            if key not in teachers:
                teachers[key] = train_teacher(study, data, recipe, plan.folds, plan.device, plan.precision)
            teacher = teachers[key]
    cfg = on_device(apply_recipe(cfg, recipe), plan.device, plan.precision)
    seeds = seed_list(plan.seeds, cfg.seed)
    # on the validation split, before any pooling; an ensemble's members are trained afresh on train + val
    # a student that is the teacher itself finds its runs without soft targets among the teacher's (run_key)
    cfg, settled, trained = settle(spec, data, cfg, recipe, seeds, name, keep=plan.folds == 1,
                                   teacher=None if teacher is None else teacher.on(data),
                                   done=None if teacher is None else teacher.runs)
    kept = next((r for r in settled if r["chosen"]), recipe.variants()[0] if recipe else {})
    on = training_data(data, plan)
    soft = None if teacher is None else soft_for(kept, teacher.logits[:len(on.train)], on)
    if plan.folds > 1:
        name = f"{name} ({plan.folds}-fold ensemble)"
    flips = "off" if recipe is None else recipe.test_flips
    report = retrain_and_test(spec, on, cfg, seeds, plan.n_bootstrap, name=name, keep_model=plan.keep_model,
                              trained=trained, folds=plan.folds, test_flips=flips,
                              flips_allowed=recipe is None or recipe.flips, soft=soft)
    report.trial, report.kind, report.settled = trial.number, records.kind(trial), settled
    report.distil = {} if teacher is None else distil_record(teacher, settled, kept)
    return report


def retrain_trial(study: optuna.Study, trial_number: int | None = None, seeds: int | Sequence[int] = 3,
                  data: Dataset | None = None, n_bootstrap: int = 1000, *, device: str | None = None,
                  keep_model: bool = False, rule: Rule | None = None, precision: str | None = None,
                  recipe="final") -> TestReport:
    """Retrain and test trial ``trial_number`` (default: the minimalist choice under ``rule``) with the
    study's final recipe (``recipe="search"``: the trial's own search config; see ``study_recipe``), one network per
    seed whatever fold count the recipe names (a fold ensemble is ``export``'s)."""
    choice = choose(study, trial_number, rule)
    plan = FinalPlan(study_recipe(study, recipe, folds=1), seeds, n_bootstrap, device, precision, keep_model)
    return train_final(study, choice, plan, data)


def retrain_study(study: optuna.Study, trial_number: int | None = None, seeds: int | Sequence[int] = 3,
                  data: Dataset | None = None, n_bootstrap: int = 1000, *, baselines: bool = True,
                  device: str | None = None, rule: Rule | None = None, precision: str | None = None,
                  recipe="final") -> list[TestReport]:
    """The chosen trial's report, then (with ``baselines``) one per completed baseline of the study, all trained
    with the same ``recipe`` and tested on the same test images with the same bootstrap resamples."""
    choice = choose(study, trial_number, rule)
    data = data if data is not None else load_study_data(study)
    plan = FinalPlan(study_recipe(study, recipe, folds=1), seeds, n_bootstrap, device, precision)
    trials = [choice.trial]
    if baselines:
        latest = {records.baseline_name(t): t for t in completed(study, baselines=True)}
        trials += [t for t in latest.values() if t.number != choice.trial.number]
    teachers: dict = {}
    return [train_final(study, t, plan, data, teachers) for t in trials]
