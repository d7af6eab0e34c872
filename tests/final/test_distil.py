"""Distillation: the soft-target loss, a training run that learns from a teacher, its settling on validation, and
an export whose card names the teacher while the exported network stays the student alone."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from cli_invoke import invoke

from nas_med.arch import ArchSpec, StageSpec, build, count_params
from nas_med.data import synthetic
from nas_med.errors import UserError
from nas_med.export import export_study
from nas_med.final.recipe import DISTIL_GRID, FinalRecipe, apply_recipe, parse_distil
from nas_med.final.settle import settle
from nas_med.final.teacher import best_front_member
from nas_med.fit import fit
from nas_med.select import choose, completed, pareto_front, value
from nas_med.soft_targets import SoftTargets
from nas_med.train import TrainConfig

SPEC = ArchSpec(1, 4, 16, stages=(StageSpec("simple", 8), StageSpec("simple", 16)))


def test_soft_loss_mixes_the_hard_loss_and_the_tempered_kl():
    g = torch.Generator().manual_seed(0)
    teacher, student = torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g)
    y, idx = torch.tensor([0, 1, 2, 0, 1, 2]), torch.arange(6)

    def hard(z, t):
        return F.cross_entropy(z, t)

    t, w = 4.0, 0.25
    soft = SoftTargets(teacher, t, w)
    kl = F.kl_div(F.log_softmax(student / t, 1), F.softmax(teacher / t, 1), reduction="batchmean")
    assert soft.loss(student, y, idx, hard).item() == pytest.approx(((1 - w) * hard(student, y) + w * t * t * kl).item())
    assert soft.loss(teacher, y, idx, hard).item() == pytest.approx((1 - w) * hard(teacher, y).item(), abs=1e-6)
    part = soft.subset(torch.tensor([4, 1]))
    assert torch.equal(part.logits, teacher[[4, 1]]) and (part.temperature, part.weight) == (t, w)
    with pytest.raises(ValueError):
        SoftTargets(teacher, 0.0, 0.5)


def test_recipe_reads_distil_values_and_refuses_bad_ones():
    recipe = FinalRecipe.from_dict({"distil": [False, "T=2, w=0.3"]})  # YAML's off is false
    assert recipe.distil == ("off", "T=2, w=0.3") and recipe.distils()
    assert [v["distil"] for v in recipe.variants()] == ["off", "T=2, w=0.3", "off", "T=2, w=0.3"]
    assert FinalRecipe().distil == DISTIL_GRID and FinalRecipe().distils()  # the default settles it
    assert "distil" not in FinalRecipe(distil="off").variants()[0] and not FinalRecipe(distil="off").distils()
    assert parse_distil("T=4,w=0.5") == (4.0, 0.5) and parse_distil("off") is None
    for bad in ("T=4", "T=0,w=0.5", "T=4,w=2", "hot"):
        with pytest.raises(UserError, match="distil must be off or"):
            FinalRecipe(distil=bad)
    assert set(DISTIL_GRID) == {"off", "T=4,w=0.5"}


@pytest.fixture(scope="module")
def data():
    return synthetic.load(size=16, n_train=96, n_val=48, n_test=40)


def test_a_distilled_run_repeats_exactly_and_differs_from_a_plain_one(data):
    cfg = TrainConfig(epochs=2, device="cpu", precision="fp32")
    teacher = torch.randn(len(data.train), 4, generator=torch.Generator().manual_seed(1)) * 3
    soft = SoftTargets(teacher, 4.0, 0.9)
    a, b = fit(SPEC, data, cfg, 0, soft=soft), fit(SPEC, data, cfg, 0, soft=soft)
    plain = fit(SPEC, data, cfg, 0)
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]
    assert a.history[0]["train_loss"] != pytest.approx(plain.history[0]["train_loss"])
    # the validation loss stays the plain cross-entropy (it picks the best epoch and settles the recipe)
    assert a.val["loss"] == pytest.approx(F.cross_entropy(_val_logits(a.model, data), data.val.labels).item(),
                                          rel=1e-4)


def _val_logits(model, data):
    from nas_med.train import Normalizer, batched_logits

    return batched_logits(model, data.val.images, Normalizer(data.train.images))


def test_settle_tries_the_teacher_and_needs_its_logits(data):
    recipe = FinalRecipe(epochs=2, augment="none", distil=["off", "T=4,w=0.5"])
    cfg = apply_recipe(TrainConfig(device="cpu", precision="fp32"), recipe)
    teacher = torch.randn(len(data.train), 4, generator=torch.Generator().manual_seed(2))
    _, rows, kept = settle(SPEC, data, cfg, recipe, [0, 1], margin=float("inf"), teacher=teacher)
    assert [r["distil"] for r in rows] == ["off", "T=4,w=0.5"] and sum(r["chosen"] for r in rows) == 1
    assert all(r["seeds"] == [0, 1] for r in rows) and set(kept) == {0, 1}
    with pytest.raises(ValueError, match="teacher"):
        settle(SPEC, data, cfg, recipe, [0])


def test_export_with_distil_names_the_teacher_and_ships_the_student_alone(tiny_study, tmp_path):
    study, _ = tiny_study
    small = synthetic.load(size=16, n_train=96, n_val=48, n_test=60)
    recipe = FinalRecipe(epochs=2, augment="none", test_flips="off")
    result = export_study(study, tmp_path / "model", seeds=1, n_bootstrap=50, data=small, cam_images=4,
                          calibration_folds=0, recipe=recipe, distil=True)
    choice = choose(study)
    record = result.report.distil
    best = best_front_member(study)
    assert record["teacher"]["trial"] == best.number
    assert value(best, "auc") == max(value(t, "auc") for t in pareto_front(completed(study)))
    assert {r.get("distil") for r in result.report.settled} == {"off", "T=4,w=0.5"}
    assert set(record) >= {"without", "with", "chosen", "val_auc_gain"}
    spec = json.loads((tmp_path / "model" / "spec.json").read_text())
    assert spec == choice.trial.user_attrs["spec"]  # the student's own architecture
    from nas_med.export import load

    assert count_params(load(tmp_path / "model")) == count_params(build(ArchSpec.from_dict(spec)))
    card = (tmp_path / "model" / "README.md").read_text()
    assert f"Teacher for distillation: trial {best.number}" in card
    assert "distilled from it" in card or "tried and not kept" in card
    saved = json.loads((tmp_path / "model" / "metrics.json").read_text())["test"]["distil"]
    assert saved["teacher"]["trial"] == best.number


def test_distil_with_the_search_recipe_is_one_line_exit_2(tiny_study, tmp_path):
    study, config = tiny_study
    result = invoke(["export", "--study", study.study_name, "--storage", config.storage, "--out", tmp_path / "m",
                     "--recipe", "search", "--distil"])
    assert result.exit_code == 2 and "--distil trains with the final recipe" in result.output
    assert not (tmp_path / "m").exists()


def test_a_recipe_file_lists_distil_and_test_flips(tmp_path):
    from nas_med.final.recipe_file import read_recipe_file

    path = tmp_path / "r.yaml"
    path.write_text('final:\n  distil: [off, "T=2,w=0.25"]\n  test_flips: off\n')
    final = read_recipe_file(path).final
    assert final.distil == ("off", "T=2,w=0.25") and final.test_flips == "off"
    path.write_text("final:\n  distil: T=2\n")
    with pytest.raises(UserError, match="recipe file .*distil must be off or"):
        read_recipe_file(path)


def test_a_fixed_distil_value_distils_without_settling(tiny_study, monkeypatch):
    from nas_med.final import retrain, retrain_trial

    study, _ = tiny_study
    seen = []
    real = retrain.fit_many
    monkeypatch.setattr(retrain, "fit_many", lambda spec, runs: seen.extend(r.soft for r in runs) or real(spec, runs))
    small = synthetic.load(size=16, n_train=64, n_val=32, n_test=40)
    recipe = FinalRecipe(epochs=1, augment="none", test_flips="off", distil="T=2,w=0.5")
    report = retrain_trial(study, seeds=1, data=small, n_bootstrap=20, device="cpu", recipe=recipe)
    assert report.settled == [] and report.distil["chosen"] and report.distil["kept"] == "T=2,w=0.5"
    assert len(seen) == 1 and (seen[0].temperature, seen[0].weight) == (2.0, 0.5) and len(seen[0]) == 64


def test_one_teacher_per_study_and_no_teacher_for_a_larger_model(tiny_study, monkeypatch):
    from nas_med.final import FinalPlan, plan, train_final

    study, _ = tiny_study
    trained = []
    real = plan.train_teacher
    monkeypatch.setattr(plan, "train_teacher", lambda *a, **k: trained.append(1) or real(*a, **k))
    small = synthetic.load(size=16, n_train=64, n_val=32, n_test=40)
    best = best_front_member(study)
    smaller = [t for t in completed(study, baselines=None) if value(t, "params") <= value(best, "params")]
    larger = [t for t in completed(study, baselines=None) if value(t, "params") > value(best, "params")]
    assert len(smaller) >= 2 and larger, "the tiny study needs two models the teacher can teach and one larger"
    recipe = FinalPlan(FinalRecipe(epochs=1, augment="none", test_flips="off"), seeds=1, n_bootstrap=20,
                       device="cpu")
    teachers: dict = {}
    taught = [train_final(study, t, recipe, small, teachers) for t in smaller[:2]]
    assert len(trained) == 1 and len(teachers) == 1  # trained once, shared by both students
    assert all(r.distil["teacher"]["trial"] == best.number for r in taught)
    alone = train_final(study, larger[0], recipe, small, teachers)
    assert alone.distil == {} and all("distil" not in row for row in alone.settled) and len(trained) == 1
    train_final(study, smaller[0], recipe, small)  # without a shared cache: its own teacher
    assert len(trained) == 2


def test_a_student_that_is_the_teacher_reuses_the_teachers_runs(tiny_study, monkeypatch):
    from nas_med.final import FinalPlan, retrain, train_final
    from nas_med.final import settle as settle_module

    study, _ = tiny_study
    trained = []
    for module in (settle_module, retrain):
        real = module.fit_many
        monkeypatch.setattr(module, "fit_many", lambda spec, runs, real=real: trained.extend(
            (r.label, r.soft is not None) for r in runs) or real(spec, runs))
    small = synthetic.load(size=16, n_train=64, n_val=32, n_test=40)
    best = best_front_member(study)
    plan = FinalPlan(FinalRecipe(epochs=1, test_flips="off"), seeds=1, n_bootstrap=20, device="cpu")
    report = train_final(study, best, plan, small)
    assert report.distil["teacher"]["trial"] == best.number
    assert [r["distil"] for r in report.settled] == ["off", "T=4,w=0.5", "off", "T=4,w=0.5"]
    # the teacher's two settle runs (none, light) and the student's two distilled ones: its plain ones are reused
    assert len(trained) == 4 and [soft for _, soft in trained] == [False, False, True, True], trained
