"""The search engine end to end on tiny synthetic data: study layout, resume, conflicts, failures."""
from __future__ import annotations

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from nas_med.arch import ArchSpec, build
from nas_med.errors import UserError
from nas_med.search import SearchConfig, search
from nas_med.search.config import OBJECTIVES
from nas_med.search.records import CONFIG
from nas_med.select import completed


def tiny(tmp_path, **kw) -> SearchConfig:
    base = dict(dataset="synthetic", size=16, space="tiny", trials=2, epochs=1, study="t",
                storage=f"sqlite:///{tmp_path}/s.db", cam_images=4, pruner="none", quiet=True, artifacts=False)
    base.update(kw)
    return SearchConfig(**base)


def space_file(tmp_path, lr=(0.003,), **arch) -> str:
    data = {"name": "custom", "arch": {"block": ["simple"], "stages": [2], "base_width": [4], **arch},
            "train": {"lr": list(lr), "batch_size": [64]}}
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_study_has_four_named_objectives_and_stored_config(tiny_study):
    study, config = tiny_study
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE", "MINIMIZE", "MAXIMIZE"]
    assert study.metric_names == list(OBJECTIVES)
    stored = study.user_attrs[CONFIG]
    assert stored["dataset"] == "synthetic" and stored["size"] == 16 and stored["space_definition"]["name"] == "tiny"
    assert stored["versions"]["optuna"] == optuna.__version__


def test_every_completed_trial_rebuilds_from_its_spec(tiny_study):
    study, _ = tiny_study
    trials = completed(study, baselines=None)
    assert len(trials) >= 4
    for trial in trials:
        model = build(ArchSpec.from_dict(trial.user_attrs["spec"]))
        assert sum(p.numel() for p in model.parameters()) == trial.values[1]
        assert 0 <= trial.values[0] <= 1 and trial.values[2] > 0 and -1 <= trial.values[3] <= 1
        assert len(trial.user_attrs["history"]) == 2


def test_baseline_is_a_marked_trial(tiny_study):
    study, _ = tiny_study
    baselines = completed(study, baselines=True)
    assert [t.user_attrs["baseline"] for t in baselines] == ["minicnn"]
    assert baselines[0].user_attrs["kind"] == "baseline"
    assert all(t.user_attrs["kind"] == "candidate" for t in completed(study))


def test_budget_is_exact_and_a_second_run_adds_trials(tmp_path):
    first = search(tiny(tmp_path))
    assert len(first.trials) == 2
    second = search(tiny(tmp_path, trials=3))
    finished = [t for t in second.trials if t.state.is_finished()]
    assert len(second.trials) == 5 and len(finished) == 5
    assert [t.number for t in second.trials] == list(range(5))


def test_a_conflicting_configuration_is_refused_and_nothing_changes(tmp_path):
    search(tiny(tmp_path))
    with pytest.raises(UserError, match="epochs: stored 1, given 3"):
        search(tiny(tmp_path, epochs=3))
    study = optuna.load_study(study_name="t", storage=f"sqlite:///{tmp_path}/s.db")
    assert len(study.trials) == 2 and study.user_attrs[CONFIG]["epochs"] == 1


def test_nan_loss_ends_as_failed_trial_with_reason_and_the_study_goes_on(tmp_path):
    path = space_file(tmp_path)
    data = yaml.safe_load(open(path))
    data["train"]["lr"] = [1.0e30]
    open(path, "w").write(yaml.safe_dump(data))
    study = search(tiny(tmp_path, space=path, trials=2))
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.FAIL]
    assert all("non-finite" in t.user_attrs["stop_reason"] for t in study.trials)


def test_collapsing_architecture_is_pruned_with_reason(tmp_path):
    study = search(tiny(tmp_path, space=space_file(tmp_path, stages=[6]), trials=2))
    assert [t.state for t in study.trials] == [TrialState.PRUNED, TrialState.PRUNED]
    assert all("collapses" in t.user_attrs["stop_reason"] for t in study.trials)


def test_pruning_prunes_some_trials(tmp_path):
    # one architecture, so a candidate with a poor learning rate is dominated (same size, lower AUC)
    study = search(tiny(tmp_path, space=space_file(tmp_path, lr=(1e-6, 0.003)), pruner="median", trials=8,
                        epochs=4, sampler="random"))
    states = [t.state for t in study.trials]
    assert len(states) == 8 and TrialState.PRUNED in states
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert all("pruned by the median pruner" in t.user_attrs["stop_reason"] and "last_auc" in t.user_attrs
               for t in pruned)
