"""The Pareto front, the minimalist rule, --prefer and --trial, on hand-made trials (no training)."""
from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from nas_med.errors import UserError
from nas_med.search.config import DIRECTIONS
from nas_med.select import Preference, Rule, choose, completed, minimalist, pareto_front, parse_prefer


def make_study(rows: list[tuple], name: str = "hand") -> optuna.Study:
    """One trial per row (auc, params, epoch_seconds, cam_quality[, kind[, state]]), numbered in order."""
    study = optuna.create_study(study_name=name, directions=list(DIRECTIONS))
    for row in rows:
        auc, params, seconds, cam = row[:4]
        kind = row[4] if len(row) > 4 else "candidate"
        state = row[5] if len(row) > 5 else TrialState.COMPLETE
        attrs = {"kind": kind, "summary": f"net{params}", "flops": params * 10}
        if kind == "baseline":
            attrs["baseline"] = "minicnn"
        values = [auc, params, seconds, cam] if state == TrialState.COMPLETE else None
        study.add_trial(create_trial(state=state, values=values, user_attrs=attrs))
    return study


def numbers(trials) -> list[int]:
    return [t.number for t in trials]


def test_pareto_front_drops_exactly_the_dominated_trials():
    study = make_study([
        (0.90, 1000, 1.0, 0.10),   # 0: front
        (0.80, 2000, 2.0, 0.00),   # 1: dominated by 0 on every objective
        (0.95, 5000, 3.0, 0.20),   # 2: front (best AUC)
        (0.90, 1000, 1.0, 0.05),   # 3: dominated by 0 (worse CAM only)
        (0.70, 500, 5.0, -0.1),    # 4: front (fewest parameters)
        (0.99, 100, 0.1, 0.9, "baseline"),  # a baseline never counts as a candidate
        (0.5, 10, 0.1, 0.0, "candidate", TrialState.PRUNED),
    ])
    cands = completed(study)
    assert numbers(cands) == [0, 1, 2, 3, 4]
    assert numbers(completed(study, baselines=True)) == [5]
    assert numbers(pareto_front(cands)) == [0, 2, 4]


def test_minimalist_takes_the_fewest_parameters_within_the_tolerance():
    study = make_study([(0.900, 10_000, 1.0, 0.1), (0.895, 3_000, 2.0, 0.1), (0.880, 500, 0.5, 0.1)])
    trials = completed(study)
    choice = minimalist(trials)
    assert choice.trial.number == 1
    assert "fewest parameters (3,000)" in choice.reason and "within 0.01 of the best (0.9000)" in choice.reason
    assert choice.eligible == [0, 1]
    assert minimalist(trials, auc_tolerance=0.03).trial.number == 2
    assert minimalist(trials, auc_tolerance=0.0).trial.number == 0
    assert minimalist([]) is None


def test_cam_floor_excludes_unsound_candidates_and_is_waived_when_none_pass():
    study = make_study([(0.90, 10_000, 1.0, 0.20), (0.90, 1_000, 1.0, -0.30)])
    trials = completed(study)
    assert minimalist(trials, cam_floor=0.0).trial.number == 0
    assert minimalist(trials, cam_floor=None).trial.number == 1
    waived = minimalist(trials, cam_floor=0.5)
    assert waived.trial.number == 1 and "waived" in waived.reason


def test_ties_on_parameters_go_to_the_shorter_epoch():
    study = make_study([(0.90, 1_000, 3.0, 0.1), (0.90, 1_000, 1.5, 0.1), (0.90, 1_000, 2.0, 0.1)])
    choice = minimalist(completed(study))
    assert choice.trial.number == 1 and "ties broken by epoch time" in choice.reason


def test_prefer_epoch_seconds_picks_the_fastest_near_best():
    study = make_study([(0.90, 100, 10.0, 0.1), (0.90, 200, 1.0, 0.1), (0.80, 50, 0.1, 0.1)])
    trials = completed(study)
    assert minimalist(trials).trial.number == 0
    fast = minimalist(trials, prefer="epoch_seconds")
    assert fast.trial.number == 1 and "shortest epoch time" in fast.reason
    assert minimalist(trials, prefer="cam_quality,epoch_seconds").trial.number == 1


def test_prefer_with_weights_ranks_per_objective():
    # ranks (0 best .. 1 worst): params X 0, Z .5, Y 1; epoch Y 0, Z .5, X 1
    study = make_study([(0.90, 100, 10.0, 0.1), (0.90, 200, 1.0, 0.1), (0.90, 150, 5.0, 0.1)])
    trials = completed(study)
    assert minimalist(trials, prefer="params:1,epoch_seconds:3").trial.number == 1
    heavy_params = minimalist(trials, prefer="params=3,epoch_seconds=1")
    assert heavy_params.trial.number == 0 and "weighted rank" in heavy_params.reason
    assert parse_prefer("params:2,epoch_seconds") == Preference(("params", "epoch_seconds"), (2.0, 1.0))


@pytest.mark.parametrize("text, message", [
    ("parms", "Did you mean 'params'"), ("params:0", "positive number"), ("params:abc", "'abc'"),
    ("params,params", "twice"), (" , ", "at least one objective"),
])
def test_bad_prefer_is_a_user_error_quoting_the_value(text, message):
    with pytest.raises(UserError, match=message):
        parse_prefer(text)


def test_bad_rule_values_are_user_errors():
    study = make_study([(0.9, 100, 1.0, 0.1)])
    with pytest.raises(UserError, match="-0.5"):
        minimalist(completed(study), auc_tolerance=-0.5)
    with pytest.raises(UserError, match="nan"):
        Rule(cam_floor=float("nan"))
    with pytest.raises(UserError, match="--auc-tolerance must be a number >= 0, got -1"):
        Rule(auc_tolerance=-1)
    with pytest.raises(UserError, match="objective in --prefer"):
        Rule(prefer="speed")


def test_the_rule_is_one_frozen_argument():
    study = make_study([(0.90, 10_000, 1.0, 0.1), (0.90, 1_000, 5.0, 0.1), (0.80, 100, 0.1, 0.1)])
    rule = Rule(prefer="epoch_seconds")
    assert rule.prefer == Preference(("epoch_seconds",)) and Rule().prefer == Preference()
    with pytest.raises(AttributeError):
        rule.auc_tolerance = 0.5  # frozen
    assert choose(study).trial.number == 1 and choose(study, rule=rule).trial.number == 0
    assert choose(study, rule=Rule(auc_tolerance=0.2)).trial.number == 2


def test_choose_by_trial_number_and_its_errors():
    study = make_study([(0.90, 10_000, 1.0, 0.1), (0.90, 1_000, 1.0, 0.1), (0.95, 900_000, 9.0, 0.1, "baseline"),
                        (0.5, 10, 0.1, 0.0, "candidate", TrialState.FAIL)])
    assert choose(study).trial.number == 1
    picked = choose(study, 0)
    assert picked.trial.number == 0 and "rule would pick trial 1" in picked.reason
    assert "baseline minicnn" in choose(study, 2).reason
    with pytest.raises(UserError, match=r"--trial 3 .*\(fail\).*completed: 0, 1, 2"):
        choose(study, 3)
    with pytest.raises(UserError, match="not in the study"):
        choose(study, 42)


def test_choose_without_completed_trials_is_a_user_error():
    with pytest.raises(UserError, match="no completed trial"):
        choose(make_study([(0.5, 10, 0.1, 0.0, "candidate", TrialState.PRUNED)], "empty"))
    only_baselines = make_study([(0.9, 100, 1.0, 0.1, "baseline")], "base")
    with pytest.raises(UserError, match="only baselines.*--trial"):
        choose(only_baselines)
    assert choose(only_baselines, 0).trial.number == 0
