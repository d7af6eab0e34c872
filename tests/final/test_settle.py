"""The final recipe's open choices (lists of lr or augment values) settled on validation, never on the test split."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from nas_med.arch import ArchSpec, StageSpec, build
from nas_med.data import synthetic
from nas_med.data.types import Split
from nas_med.errors import UserError
from nas_med.final.recipe import FinalRecipe, apply_recipe
from nas_med.final.settle import settle
from nas_med.train import TrainConfig, train


@pytest.fixture(autouse=True)
def _isolated(isolated):
    """Own data cache, one torch thread (tests/conftest.py)."""


SPEC = ArchSpec(1, 4, 16, stages=(StageSpec("simple", 8), StageSpec("simple", 16)))


@pytest.fixture(scope="module")
def data():
    return synthetic.load(size=16, n_train=96, n_val=48, n_test=40)


def test_variants_are_every_combination_first_value_first():
    recipe = FinalRecipe(lr=[1e-3, 2e-3], augment=["none", "light"], distil="off")
    assert recipe.lr == (1e-3, 2e-3) and recipe.augment == ("none", "light")
    assert recipe.variants() == [{"lr": 1e-3, "augment": "none"}, {"lr": 1e-3, "augment": "light"},
                                 {"lr": 2e-3, "augment": "none"}, {"lr": 2e-3, "augment": "light"}]
    cfg = apply_recipe(TrainConfig(), recipe)
    assert (cfg.lr, cfg.augment) == (1e-3, "none")
    assert (apply_recipe(TrainConfig(), recipe, recipe.variants()[3]).augment) == "light"
    one = FinalRecipe(lr=[0.003], augment="medium", distil="off")  # a one-value list is that value, fixed
    assert (one.lr, one.augment, one.variants()) == (0.003, "medium", [{"lr": 0.003, "augment": "medium"}])
    assert FinalRecipe.from_dict(recipe.to_dict()) == recipe  # a study stores lists; they come back as tuples
    assert FinalRecipe.from_dict({"lr": "1e-3"}).lr == 1e-3  # YAML reads 1e-3 (no dot) as a string


@pytest.mark.parametrize("kwargs, needle", [
    ({"lr": []}, "lr must list at least one value"),
    ({"augment": ["none", "none"]}, "each once"),
    ({"augment": ["none", "heavy"]}, "unknown augmentation policy 'heavy'"),
    ({"lr": [1e-3, -1.0]}, "lr must be > 0"),
    ({"lr": ["fast"]}, "lr must be > 0"),
])
def test_bad_lists_are_user_errors(kwargs, needle):
    with pytest.raises(UserError, match=needle):
        FinalRecipe.from_dict(kwargs)


def test_settle_keeps_the_lowest_validation_loss_and_never_looks_at_the_test_split(data):
    recipe = FinalRecipe(epochs=3, lr=[1e-3, 3e-2], augment=["none", "light"], warmup=0.0, distil="off")
    cfg = apply_recipe(TrainConfig(device="cpu", precision="fp32", seed=5), recipe)
    settled, rows, trained = settle(SPEC, data, cfg, recipe, seeds=(5, 6), margin=float("inf"))  # every seed
    assert [(r["lr"], r["augment"]) for r in rows] == [(v["lr"], v["augment"]) for v in recipe.variants()]
    assert sum(r["chosen"] for r in rows) == 1
    best = next(r for r in rows if r["chosen"])
    assert best["val_loss"] == min(r["val_loss"] for r in rows)
    assert sorted(trained) == [5, 6] and all(len(r["best_epochs"]) == 2 and r["seeds"] == [5, 6] for r in rows)
    # the kept runs are the ones a fresh training of the settled config gives (so they are reused, not redone); the
    # variants trained together (nas_med.fused), which rounds like a separate run within float tolerance
    torch.manual_seed(6)
    again = train(build(SPEC), data, replace(settled, seed=6))
    assert again.best_epoch == trained[6].best_epoch
    for a, b in zip(again.model.state_dict().values(), trained[6].model.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), rtol=1e-3, atol=1e-4), (a - b).abs().max()
    assert (settled.lr, settled.augment) == (best["lr"], best["augment"])
    assert (settled.seed, settled.epochs, settled.device) == (5, 3, "cpu")  # the rest of the config is kept
    # the test split plays no part: scrambled test images and labels settle the same way, to the last digit
    scrambled = replace(data, test=Split(torch.full_like(data.test.images, 255), 1 - data.test.labels))
    assert settle(SPEC, scrambled, cfg, recipe, seeds=(5, 6), keep=False, margin=float("inf"))[1:] == (rows, {})


def test_a_clearly_worse_variant_is_dropped_after_one_seed(data):
    """One seed per variant first; only variants within the margin of the best train with the next seed."""
    recipe = FinalRecipe(epochs=3, lr=[1e-3, 3e-2], augment=["none", "light"], warmup=0.0, distil="off")
    cfg = apply_recipe(TrainConfig(device="cpu", precision="fp32", seed=5), recipe)
    every = settle(SPEC, data, cfg, recipe, seeds=(5, 6, 7), keep=False, margin=float("inf"))[1]
    first = {(r["lr"], r["augment"]): r for r in every}  # the same runs, seed 5 first
    screened, rows, trained = settle(SPEC, data, cfg, recipe, seeds=(5, 6, 7), margin=0.0)
    assert all(r["seeds"] == [5] for r in rows) and sorted(trained) == [5]  # 4 runs, not 12
    assert sum(r["chosen"] for r in rows) == 1
    best = next(r for r in rows if r["chosen"])
    assert best["val_loss"] == min(r["val_loss"] for r in rows)
    for r in rows:  # each variant's one run is the run it makes with every seed
        assert r["best_epochs"][0] == first[(r["lr"], r["augment"])]["best_epochs"][0]
    assert (screened.lr, screened.augment) == (best["lr"], best["augment"])
    # a margin that keeps two close variants trains both with the next seed and compares their means
    losses = sorted(r["val_loss"] for r in rows)
    margin = (losses[1] - losses[0]) / losses[0] * 1.01
    _, rows, trained = settle(SPEC, data, cfg, recipe, seeds=(5, 6, 7), margin=margin)
    assert sum(len(r["seeds"]) > 1 for r in rows) >= 2 and len(trained) >= 2


def test_one_variant_or_the_search_recipe_trains_nothing_more(data, monkeypatch):
    import nas_med.final.settle as settle_module

    monkeypatch.setattr(settle_module, "fit_many", lambda *a, **k: pytest.fail("settle trained a model"))
    cfg = apply_recipe(TrainConfig(device="cpu"), FinalRecipe(augment="none", distil="off"))
    assert settle(SPEC, data, cfg, FinalRecipe(augment="none", distil="off"), seeds=(0,)) == (cfg, [], {})
    assert settle(SPEC, data, cfg, None, seeds=(0,)) == (cfg, [], {})
