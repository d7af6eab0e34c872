"""Cross-validated confirmation of the near-best candidates, and the minimalist rule on its AUCs."""
from __future__ import annotations

import numpy as np
import optuna
import pytest
import torch
from click.testing import CliRunner

from nas_med.cli.main import cli
from nas_med.confirm import (
    auc_standard_error,
    confirm,
    cross_validated_auc,
    near_best,
)
from nas_med.data import load_dataset
from nas_med.data.splits import fold_indices
from nas_med.errors import UserError
from nas_med.search.records import CONFIRMED
from nas_med.select import choose, completed, confirmed_aucs, minimalist, pareto_front, value


@pytest.fixture
def copy_of_tiny(tiny_study, tmp_path):
    """A writable copy of the shared tiny study (confirm stores its result on the study)."""
    study, config = tiny_study
    url = f"sqlite:///{tmp_path}/copy.db"
    optuna.copy_study(from_study_name=study.study_name, from_storage=config.storage, to_storage=url)
    return optuna.load_study(study_name=study.study_name, storage=url), url


def test_standard_error_matches_hanley_mcneil_and_shrinks_with_more_images():
    # Hanley & McNeil (1982), table 2 style figures: AUC 0.8 with 21 positives and 57 negatives
    q1, q2 = 0.8 / 1.2, 2 * 0.64 / 1.8
    expected = np.sqrt((0.8 * 0.2 + 20 * (q1 - 0.64) + 56 * (q2 - 0.64)) / (21 * 57))
    assert auc_standard_error(0.8, 21, 57) == pytest.approx(expected)
    assert auc_standard_error(0.8, 210, 570) < auc_standard_error(0.8, 21, 57) / 3
    assert np.isnan(auc_standard_error(0.8, 0, 57))


def test_folds_are_stratified_disjoint_and_cover_every_image():
    labels = torch.tensor([0] * 30 + [1] * 10)
    folds = fold_indices(labels, 5, seed=0)
    assert sorted(np.concatenate(folds).tolist()) == list(range(40))
    assert all(int((labels[f] == 1).sum()) == 2 for f in folds)
    with pytest.raises(UserError, match="the number of folds must be between 2 and .* \\(10\\), got 11"):
        fold_indices(labels, 11, seed=0)
    with pytest.raises(UserError, match="got 1"):
        fold_indices(labels, 1, seed=0)


def test_near_best_takes_front_members_within_tolerance_plus_one_standard_error(tiny_study):
    study, _ = tiny_study
    data = load_dataset("synthetic", size=16, seed=0)
    front = pareto_front(completed(study))
    near = near_best(study, data, auc_tolerance=0.0, max_candidates=10)
    best = max(value(t, "auc") for t in front)
    assert near[0].number == max(front, key=lambda t: value(t, "auc")).number
    assert all(value(t, "auc") >= best - 0.2 for t in near)  # one SE on 50 images of the rarest class < 0.2
    assert len(near_best(study, data, auc_tolerance=1.0, max_candidates=10)) == len(front)
    assert len(near_best(study, data, auc_tolerance=1.0, max_candidates=2)) == 2
    with pytest.raises(UserError, match="auc-tolerance"):
        near_best(study, data, auc_tolerance=-0.1)


def test_cross_validated_auc_is_a_real_score_of_out_of_fold_predictions(tiny_study):
    study, _ = tiny_study
    data = load_dataset("synthetic", size=16, seed=0)
    trial = max(pareto_front(completed(study)), key=lambda t: value(t, "auc"))
    score = cross_validated_auc(trial, data, folds=2)
    assert 0.0 <= score <= 1.0
    assert score != value(trial, "auc")  # pooled out-of-fold images, not the search's validation split
    assert cross_validated_auc(trial, data, folds=2) == pytest.approx(score)  # seeded


def test_confirm_stores_aucs_and_the_rule_then_uses_them(copy_of_tiny):
    study, _ = copy_of_tiny
    aucs = confirm(study, folds=2, auc_tolerance=1.0, max_candidates=2)
    assert len(aucs) == 2 and set(aucs) <= {t.number for t in pareto_front(completed(study))}
    study = optuna.load_study(study_name=study.study_name, storage=study._storage)
    assert confirmed_aucs(study) == pytest.approx(aucs)
    choice = choose(study)
    assert choice.trial.number in aucs and "cross-validated AUC" in choice.reason
    expected = minimalist(pareto_front(completed(study)), aucs=aucs)
    assert choice.trial.number == expected.trial.number
    # a new candidate that changes the front makes the confirmation stale: the rule is back on validation AUC
    best = max(completed(study), key=lambda t: value(t, "auc"))
    study.add_trial(optuna.trial.create_trial(values=[1.0, 1.0, 1e-4, 1.0], user_attrs=dict(best.user_attrs)))
    assert confirmed_aucs(study) is None
    assert "validation AUC" in choose(study).reason


def test_confirm_refuses_data_grouped_by_patient(copy_of_tiny):
    study, _ = copy_of_tiny
    data = load_dataset("synthetic", size=16, seed=0)
    data.info.group_key = r"patient(\d+)"
    with pytest.raises(UserError, match="patient"):
        confirm(study, data=data, folds=2)
    assert CONFIRMED not in study.user_attrs


def test_cli_confirm_prints_the_scores_and_bad_folds_exit_2(copy_of_tiny):
    study, url = copy_of_tiny
    runner = CliRunner()
    bad = runner.invoke(cli, ["confirm", "--study", study.study_name, "--storage", url, "--cv-folds", "1"])
    assert bad.exit_code == 2 and "--cv-folds must be between 2" in bad.output and "Traceback" not in bad.output
    old = runner.invoke(cli, ["confirm", "--study", study.study_name, "--storage", url, "--folds", "1"])
    assert old.exit_code == 2 and "Note: confirm --folds is now --cv-folds" in old.output
    ok = runner.invoke(cli, ["confirm", "--study", study.study_name, "--storage", url, "--cv-folds", "2",
                             "--max-candidates", "1"])
    assert ok.exit_code == 0, ok.output
    assert "2-fold cross-validated AUC" in ok.output and "(cv " in ok.output
