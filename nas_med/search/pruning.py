"""Pruning for a multi-objective study through a single-objective shadow study.

Optuna does not prune multi-objective trials (``trial.report``/``should_prune`` raise). Each candidate asks a
trial of ``<study>:pruning`` (maximize validation AUC, with the chosen pruner) in the same storage, reports its
AUC per epoch there, and is pruned when the shadow trial is.
"""
from __future__ import annotations

import optuna

from ..errors import look_up
from .config import PRUNERS

SHADOW_SUFFIX = ":pruning"


def make_pruner(name: str, epochs: int) -> optuna.pruners.BasePruner:
    """The Optuna pruner named ``name`` with warm-up sized to ``epochs``."""
    look_up(name, PRUNERS, "pruner")
    warmup = max(1, epochs // 4)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=warmup)
    if name == "percentile":
        return optuna.pruners.PercentilePruner(33.0, n_startup_trials=4, n_warmup_steps=warmup)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs, reduction_factor=3)
    if name == "sha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.NopPruner()


def shadow_study(study_name: str, storage, pruner_name: str, epochs: int) -> optuna.Study:
    """The shadow study of ``study_name`` (created when missing)."""
    return optuna.create_study(study_name=study_name + SHADOW_SUFFIX, storage=storage, direction="maximize",
                               pruner=make_pruner(pruner_name, epochs), load_if_exists=True)


class ShadowPruning:
    """Links one real trial to one shadow trial: ``report`` each epoch, ``should_prune``, then ``finish``."""

    def __init__(self, shadow: optuna.Study, trial: optuna.Trial):
        self.shadow = shadow
        self.shadow_trial = shadow.ask()
        self.shadow_trial.set_user_attr("trial_number", trial.number)
        trial.set_user_attr("shadow_trial", self.shadow_trial.number)
        self.last = float("nan")

    def report(self, value: float, step: int) -> bool:
        """Report ``value`` at ``step``; True when the candidate should be pruned."""
        self.last = value
        self.shadow_trial.report(value, step)
        return self.shadow_trial.should_prune()

    def finish(self, value: float | None = None, pruned: bool = False) -> None:
        """Close the shadow trial: PRUNED, FAIL (``value`` None) or COMPLETE with ``value``."""
        if pruned:
            self.shadow.tell(self.shadow_trial, state=optuna.trial.TrialState.PRUNED)
        elif value is None:
            self.shadow.tell(self.shadow_trial, state=optuna.trial.TrialState.FAIL)
        else:
            self.shadow.tell(self.shadow_trial, value)
