"""Pruning for a multi-objective study through a single-objective shadow study.

Optuna does not prune multi-objective trials (``trial.report``/``should_prune`` raise). Each candidate asks a
trial of ``<study>:pruning`` (maximize validation AUC, with the chosen pruner) in the same storage, reports its
AUC per epoch there, and is pruned when the shadow trial is.

The pruners look at AUC alone, but the search has four objectives: a small, cheap candidate with a modest AUC
can still belong on the Pareto front. So a candidate whose size is known is pruned only when the pruner says so
*and* a completed candidate that is no larger (parameters) and no slower (modelled epoch seconds; FLOPs in a
study that measures its epoch time) had at least its validation AUC at the same epoch: it is then dominated on
everything known while it trains.
"""
from __future__ import annotations

from typing import Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..errors import look_up
from . import records
from ._optuna_private import HistoryView, storage_of, trial_id
from .config import PRUNERS
from .storage import set_user_attrs

SHADOW_SUFFIX = ":pruning"


class AfterWarmupPruner(optuna.pruners.BasePruner):
    """Willing to prune any trial from step ``n_warmup_steps`` on. With the dominance check of ``ShadowPruning``
    (``--pruner pareto``) it stops exactly the candidates that a completed one dominates at the same epoch."""

    def __init__(self, n_warmup_steps: int):
        self.n_warmup_steps = n_warmup_steps

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        step = trial.last_step
        return step is not None and step >= self.n_warmup_steps


def make_pruner(name: str, epochs: int) -> optuna.pruners.BasePruner:
    """The Optuna pruner named ``name`` with warm-up sized to ``epochs``."""
    look_up(name, PRUNERS, "pruner")
    warmup = max(1, epochs // 8)
    if name == "pareto":
        return AfterWarmupPruner(warmup)
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


# what a candidate costs, known before it trains: its parameters and its modelled epoch time (the objectives
# themselves); studies that measure their epoch time compare FLOPs instead
COST_KEYS = (records.PARAMS, records.EPOCH_SECONDS_MODEL)
OLD_COST_KEYS = (records.PARAMS, records.FLOPS)


class ShadowPruning:
    """Links one real trial to one shadow trial: ``report`` each epoch, ``should_prune``, then ``finish``.
    ``cost``: the candidate's ``params`` and ``epoch_seconds_model`` or ``flops`` (any may be missing); without
    them pruning looks at AUC alone. ``visible``: which shadow trials the decision may compare with (None: all); a reproducible
    search passes those of earlier batches, so that the decision does not depend on what finished meanwhile."""

    def __init__(self, shadow: optuna.Study, trial: optuna.Trial, cost: dict | None = None,
                 visible: Callable[[FrozenTrial], bool] | None = None):
        self.shadow = shadow
        self.shadow_trial = shadow.ask()
        self.visible = visible
        cost = cost or {}
        keys = COST_KEYS if records.EPOCH_SECONDS_MODEL in cost else OLD_COST_KEYS
        self.cost = {key: cost[key] for key in keys if key in cost}
        slot = trial.user_attrs.get(records.SLOT)
        set_user_attrs(self.shadow_trial, {records.SHADOW_OF: trial.number, **self.cost,
                                           **({} if slot is None else {records.SLOT: slot})})
        self.number = self.shadow_trial.number

    def report(self, value: float, step: int) -> bool:
        """Report ``value`` at ``step``; True when the candidate should be pruned."""
        self.shadow_trial.report(value, step)
        if self.visible is None:
            return self.shadow_trial.should_prune() and self.dominated(value, step)
        # the pruner asked directly, on a view of the shadow study that holds only the visible trials
        current = storage_of(self.shadow).get_trial(trial_id(self.shadow_trial))
        completed = self._completed()
        view = HistoryView(self.shadow, completed + [current])
        return self.shadow.pruner.prune(view, current) and self.dominated(value, step, completed)

    def _completed(self) -> list[FrozenTrial]:
        done = self.shadow.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        return done if self.visible is None else [t for t in done if self.visible(t)]

    def dominated(self, value: float, step: int, completed: list[FrozenTrial] | None = None) -> bool:
        """Whether a completed (visible) candidate no larger and no costlier (any, without a known cost) reached
        at least ``value`` at ``step``."""
        for other in self._completed() if completed is None else completed:
            reached = other.intermediate_values.get(step)
            if reached is not None and reached >= value and all(
                    other.user_attrs.get(key, float("inf")) <= limit for key, limit in self.cost.items()):
                return True
        return False

    def finish(self, value: float | None = None, pruned: bool = False) -> None:
        """Close the shadow trial: PRUNED, FAIL (``value`` None) or COMPLETE with ``value``."""
        if pruned:
            self.shadow.tell(self.shadow_trial, state=optuna.trial.TrialState.PRUNED)
        elif value is None:
            self.shadow.tell(self.shadow_trial, state=optuna.trial.TrialState.FAIL)
        else:
            self.shadow.tell(self.shadow_trial, value)
