"""Shadow-study pruning, tested with study.ask() and hand-made values (no training)."""
from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from nas_med.search.pruning import SHADOW_SUFFIX, ShadowPruning, make_pruner, shadow_study


@pytest.fixture
def studies():
    storage = optuna.storages.InMemoryStorage()
    real = optuna.create_study(study_name="s", storage=storage, directions=["maximize"] * 2 + ["minimize"] * 2)
    return real, shadow_study("s", storage, "median", epochs=8)


def run(real, shadow, curve):
    trial = real.ask()
    link = ShadowPruning(shadow, trial)
    for step, value in enumerate(curve):
        if link.report(value, step):
            link.finish(pruned=True)
            real.tell(trial, state=TrialState.PRUNED)
            return "pruned", trial, link
    link.finish(curve[-1])
    real.tell(trial, [curve[-1], 1.0, 1.0, 0.0])
    return "complete", trial, link


def test_a_poor_curve_is_pruned_after_warmup_and_startup(studies):
    real, shadow = studies
    assert shadow.study_name == "s" + SHADOW_SUFFIX and shadow.direction.name == "MAXIMIZE"
    for _ in range(4):
        assert run(real, shadow, [0.8, 0.85, 0.9, 0.92])[0] == "complete"
    outcome, trial, link = run(real, shadow, [0.5, 0.5, 0.5, 0.5])
    assert outcome == "pruned"
    frozen = real.trials[trial.number]
    assert frozen.user_attrs["shadow_trial"] == link.shadow_trial.number
    assert shadow.trials[link.shadow_trial.number].state == TrialState.PRUNED
    assert shadow.trials[link.shadow_trial.number].user_attrs["trial_number"] == trial.number


def test_a_good_curve_is_not_pruned(studies):
    real, shadow = studies
    for _ in range(4):
        run(real, shadow, [0.6, 0.65, 0.7, 0.72])
    assert run(real, shadow, [0.9, 0.92, 0.95, 0.96])[0] == "complete"


@pytest.mark.parametrize("name,cls", [("median", optuna.pruners.MedianPruner),
                                      ("hyperband", optuna.pruners.HyperbandPruner),
                                      ("sha", optuna.pruners.SuccessiveHalvingPruner),
                                      ("percentile", optuna.pruners.PercentilePruner),
                                      ("none", optuna.pruners.NopPruner)])
def test_pruner_names(name, cls):
    assert isinstance(make_pruner(name, 8), cls)
