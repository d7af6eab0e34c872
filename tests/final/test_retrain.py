"""Retraining and testing: the vectorised bootstrap agrees with nas_med.metrics; reports hold seeds, spread and
intervals; the choice and the baselines of a study are retrained on the study's data."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nas_med.arch import ArchSpec, HeadSpec, StageSpec
from nas_med.data import synthetic
from nas_med.errors import UserError
from nas_med.final import retrain_study
from nas_med.final.bootstrap import METRICS, bootstrap_metrics, resample_metrics
from nas_med.final.retrain import retrain_and_test
from nas_med.metrics import all_metrics
from nas_med.search.records import load_study_data
from nas_med.select import choose
from nas_med.train import TrainConfig

SPEC = ArchSpec(1, 4, 16, (StageSpec("simple", 4, norm="batch"), StageSpec("simple", 8, norm="batch")),
                head=HeadSpec("gap_linear"))
FAST = TrainConfig(epochs=2, lr=3e-3, batch_size=32, device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def small_data():
    """Synthetic 16 px with few images, so that a retraining takes well under a second."""
    return synthetic.load(size=16, n_train=96, n_val=48, n_test=120)


def _labels_probs(task: str, n: int, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    if task == "multilabel":
        labels = (rng.random((n, k)) < 0.3).astype(float)
        probs = np.round(rng.random((n, k)), 1)  # rounded: many ties
        return labels, probs
    labels = rng.integers(0, k, n)
    probs = np.round(rng.dirichlet(np.ones(k), n), 1)
    probs[:, 0] = 1 - probs[:, 1:].sum(1)
    return labels, probs


@pytest.mark.parametrize("task, k", [("binary", 2), ("multiclass", 4), ("multilabel", 5)])
def test_resampled_metrics_equal_nas_med_metrics(task, k):
    rng = np.random.default_rng(k)
    labels, probs = _labels_probs(task, 60, k, rng)
    if task == "multiclass":
        labels[labels == 3] = 2  # a class absent from the test images
    index = np.vstack([np.arange(60), rng.integers(0, 60, (4, 60))])
    got = resample_metrics(task, labels, probs, index)
    for row, values in zip(index, got):
        ref = all_metrics(task, labels[row], probs[row])
        np.testing.assert_allclose(values, [ref[m] for m in METRICS], atol=1e-12)


def test_bootstrap_is_seeded_and_a_perfect_model_has_no_spread():
    rng = np.random.default_rng(0)
    labels, probs = _labels_probs("multiclass", 80, 4, rng)
    a, b = bootstrap_metrics("multiclass", labels, [probs], 200, seed=3), \
        bootstrap_metrics("multiclass", labels, [probs], 200, seed=3)
    assert a.shape == (1, 200, 4) and np.array_equal(a, b)
    assert not np.array_equal(a, bootstrap_metrics("multiclass", labels, [probs], 200, seed=4))
    perfect = np.eye(4)[labels]
    s = bootstrap_metrics("multiclass", labels, [perfect], 100)
    assert np.all(s == 1.0)


def test_retrain_and_test_reports_seeds_spread_and_intervals(small_data):
    report = retrain_and_test(SPEC, small_data, FAST, seeds=(0, 1), n_bootstrap=300, name="tiny")
    assert report.seeds == [0, 1] and len(report.per_seed) == 2 and report.n_test == 120
    for m in METRICS:
        s = report.summary[m]
        per_seed = [r[m] for r in report.per_seed]
        assert s["mean"] == pytest.approx(np.mean(per_seed))
        assert s["std"] == pytest.approx(np.std(per_seed, ddof=1))
        assert 0 <= s["ci_low"] <= s["mean"] <= s["ci_high"] <= 1
        for r in report.per_seed:
            lo, hi = r["ci"][m]
            assert lo <= r[m] <= hi
    assert report.summary["epoch_seconds"]["mean"] > 0
    assert report.model is None  # not kept unless asked
    assert json.loads(json.dumps(report.to_dict()))["spec"] == SPEC.to_dict()
    again = retrain_and_test(SPEC, small_data, FAST, seeds=(1,), n_bootstrap=50, keep_model=True)
    assert again.per_seed[0]["auc"] == pytest.approx(report.per_seed[1]["auc"])  # a seed repeats its run
    assert isinstance(again.model, torch.nn.Module)


def test_bad_retraining_input_is_a_user_error(small_data):
    with pytest.raises(UserError, match="at least one seed"):
        retrain_and_test(SPEC, small_data, FAST, seeds=())
    with pytest.raises(UserError, match="bootstrap resamples.*0"):
        retrain_and_test(SPEC, small_data, FAST, n_bootstrap=0)
    with pytest.raises(UserError, match="3 channel"):
        retrain_and_test(SPEC.with_io(in_channels=3), small_data, FAST)


def test_retrain_study_tests_the_choice_and_the_baselines(tiny_study, small_data):
    study, _ = tiny_study
    data = load_study_data(study)
    assert (data.size, data.in_channels, len(data.test)) == (16, 1, 200)
    reports = retrain_study(study, seeds=1, data=small_data, n_bootstrap=100, recipe="search")
    choice = choose(study)
    assert [r.trial for r in reports][0] == choice.trial.number
    assert [r.kind for r in reports] == ["candidate", "baseline"]
    assert reports[1].name.startswith("minicnn")
    own_seed = choice.trial.user_attrs["train_config"]["seed"]
    assert reports[0].seeds == [own_seed]  # a count of seeds starts at the trial's own seed
    assert reports[0].train_config["epochs"] == 2 and reports[0].spec.to_dict() == choice.trial.user_attrs["spec"]


def test_retrain_uses_the_final_recipe_by_default_for_the_choice_and_the_baselines(tiny_study, small_data):
    from nas_med.final.recipe import FinalRecipe

    study, _ = tiny_study
    short = FinalRecipe(epochs=3, warmup=0.2)
    reports = retrain_study(study, seeds=1, data=small_data, n_bootstrap=20, recipe=short)
    for r in reports:
        assert (r.train_config["epochs"], r.train_config["optimizer"], r.train_config["schedule"]) == (3, "adamw",
                                                                                                      "cosine")
