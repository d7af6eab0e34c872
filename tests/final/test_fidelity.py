"""The choice at the final fidelity: near-best candidates trained once with the final recipe before the
minimalist rule picks, and the card saying which fidelity decided."""
from __future__ import annotations

import json
import math

import pytest

from nas_med.data import synthetic
from nas_med.export import export_study
from nas_med.final import fidelity as fidelity_module
from nas_med.final.fidelity import FINAL_KIND, choose_at_final_fidelity
from nas_med.final.recipe import FinalRecipe
from nas_med.select import Rule, completed, pareto_front, value

RECIPE = FinalRecipe(epochs=2, augment="none", test_flips="off")


@pytest.fixture(scope="module")
def small():
    return synthetic.load(size=16, n_train=96, n_val=48, n_test=60)


def test_every_near_best_candidate_trains_once_and_the_rule_picks_on_final_aucs(tiny_study, small, monkeypatch):
    study, _ = tiny_study
    rule = Rule(auc_tolerance=1.0, cam_floor=None)  # every front member is near-best
    calls = []
    real_fit = fidelity_module.fit
    monkeypatch.setattr(fidelity_module, "fit", lambda *a, **k: calls.append(a[2].epochs) or real_fit(*a, **k))
    choice, record = choose_at_final_fidelity(study, small, RECIPE, rule, device="cpu", precision="fp32")
    front = pareto_front(completed(study))
    assert record["fidelity"] == "final" and len(record["candidates"]) == min(5, len(front)) >= 2
    assert calls == [2] * len(record["candidates"])  # one final-recipe run per candidate
    assert all(math.isfinite(c["final_val_auc"]) for c in record["candidates"])
    fewest = min(record["candidates"], key=lambda c: (c["params"], c["trial"]))  # all within 1.0 AUC of the best
    assert choice.trial.number == fewest["trial"] and FINAL_KIND in choice.reason
    assert record["search_choice"] == rule.pick(front).trial.number


def test_a_single_near_best_candidate_trains_nothing(tiny_study, small, monkeypatch):
    study, _ = tiny_study
    monkeypatch.setattr(fidelity_module, "fit", lambda *a, **k: pytest.fail("trained"))
    best = max(pareto_front(completed(study)), key=lambda t: value(t, "auc"))
    choice, record = choose_at_final_fidelity(study, small, RECIPE, Rule(auc_tolerance=0.0, cam_floor=None))
    assert record["fidelity"] == "search" and choice.trial.number == best.number


def test_export_card_says_which_fidelity_decided(tiny_study, small, tmp_path):
    study, _ = tiny_study
    result = export_study(study, tmp_path / "m", seeds=1, n_bootstrap=50, data=small, cam_images=4,
                          calibration_folds=0, recipe=RECIPE, final_fidelity=True,
                          rule=Rule(auc_tolerance=1.0, cam_floor=None))
    card = (tmp_path / "m" / "README.md").read_text()
    saved = json.loads((tmp_path / "m" / "metrics.json").read_text())["study"]["fidelity"]
    assert saved["fidelity"] == "final" and "Decided at the final fidelity" in card
    assert result.choice.trial.number in [c["trial"] for c in saved["candidates"]]
    plain = export_study(study, tmp_path / "p", seeds=1, n_bootstrap=50, data=small, cam_images=4,
                         calibration_folds=0, recipe=RECIPE)
    assert "Decided at the search's fidelity" in (tmp_path / "p" / "README.md").read_text()
    assert plain.choice.trial.number == rule_choice(study)


def rule_choice(study) -> int:
    return Rule().pick(pareto_front(completed(study))).trial.number
