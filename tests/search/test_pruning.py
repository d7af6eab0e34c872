"""Shadow-study pruning, tested with study.ask() and hand-made values (no training)."""
from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from nas_med.search.pruning import SHADOW_SUFFIX, AfterWarmupPruner, ShadowPruning, make_pruner, shadow_study


@pytest.fixture
def studies():
    storage = optuna.storages.InMemoryStorage()
    real = optuna.create_study(study_name="s", storage=storage, directions=["maximize"] * 2 + ["minimize"] * 2)
    return real, shadow_study("s", storage, "median", epochs=8)


def run(real, shadow, curve, cost=None, visible=None):
    trial = real.ask()
    link = ShadowPruning(shadow, trial, cost=cost, visible=visible)
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
    assert link.number == link.shadow_trial.number
    assert shadow.trials[link.shadow_trial.number].state == TrialState.PRUNED
    assert shadow.trials[link.shadow_trial.number].user_attrs["trial_number"] == trial.number


def test_a_good_curve_is_not_pruned(studies):
    real, shadow = studies
    for _ in range(4):
        run(real, shadow, [0.6, 0.65, 0.7, 0.72])
    assert run(real, shadow, [0.9, 0.92, 0.95, 0.96])[0] == "complete"


@pytest.mark.parametrize("params,flops,outcome", [
    (10_000, 1e6, "pruned"),     # larger and costlier than the completed ones: dominated
    (500, 1e6, "complete"),      # smaller than every completed candidate: may sit on the front
    (10_000, 1e3, "complete"),   # larger, but cheaper to run: may be the fastest on the front
    (1_000, 1e5, "pruned"),      # exactly as large and costly as the completed ones: dominated
])
def test_only_a_candidate_dominated_on_size_and_cost_is_pruned(studies, params, flops, outcome):
    real, shadow = studies
    for _ in range(4):
        run(real, shadow, [0.8, 0.85, 0.9, 0.92], cost={"params": 1_000, "flops": 1e5})
    got, _, link = run(real, shadow, [0.5, 0.5, 0.5, 0.5], cost={"params": params, "flops": flops})
    assert got == outcome
    assert shadow.trials[link.number].user_attrs["params"] == params


def test_a_better_curve_than_every_smaller_candidate_is_kept(studies):
    real, shadow = studies
    for _ in range(2):  # small candidates with a low AUC, large ones with a high AUC
        run(real, shadow, [0.55, 0.56, 0.57, 0.58], cost={"params": 100, "flops": 1e4})
        run(real, shadow, [0.9, 0.92, 0.94, 0.95], cost={"params": 1e6, "flops": 1e8})
    # the median says prune, but only larger candidates beat it: it may be a front member of middle size
    assert run(real, shadow, [0.6, 0.6, 0.6, 0.6], cost={"params": 1e4, "flops": 1e6})[0] == "complete"
    assert run(real, shadow, [0.5, 0.5, 0.5, 0.5], cost={"params": 1e4, "flops": 1e6})[0] == "pruned"


def test_pareto_pruner_stops_any_dominated_candidate_and_only_those():
    storage = optuna.storages.InMemoryStorage()
    real = optuna.create_study(study_name="p", storage=storage, directions=["maximize"] * 2 + ["minimize"] * 2)
    shadow = shadow_study("p", storage, "pareto", epochs=16)  # warm-up: 2 epochs
    small, large = {"params": 100, "flops": 1e4}, {"params": 1e6, "flops": 1e8}
    run(real, shadow, [0.9, 0.9, 0.9, 0.9], cost=small)  # one completed small, good candidate
    # above the median of everything so far, but the small one was better at epoch 2: dominated, pruned there
    outcome, _, link = run(real, shadow, [0.88, 0.88, 0.88, 0.95], cost=large)
    assert outcome == "pruned" and max(shadow.trials[link.number].intermediate_values) == 2
    assert run(real, shadow, [0.5, 0.5, 0.5, 0.5], cost={"params": 50, "flops": 1e4})[0] == "complete"  # smaller
    assert run(real, shadow, [0.95, 0.95, 0.95, 0.95], cost=large)[0] == "complete"  # better than all


@pytest.mark.parametrize("name,cls", [("median", optuna.pruners.MedianPruner), ("pareto", AfterWarmupPruner),
                                      ("hyperband", optuna.pruners.HyperbandPruner),
                                      ("sha", optuna.pruners.SuccessiveHalvingPruner),
                                      ("percentile", optuna.pruners.PercentilePruner),
                                      ("none", optuna.pruners.NopPruner)])
def test_pruner_names(name, cls):
    assert isinstance(make_pruner(name, 8), cls)
