"""Recipe files, --recipe and --ensemble (old spelling --folds): bad input is one line ``Error: ...``, exit 2, nothing written."""
from __future__ import annotations

from pathlib import Path

import pytest
from cli_invoke import invoke  # tests/cli_invoke.py

from nas_med.final.recipe import FinalRecipe
from nas_med.final.recipe_file import read_recipe_file

STUDIES = Path(__file__).resolve().parents[2] / "studies"


@pytest.fixture(autouse=True)
def _isolated(isolated):
    """Own data cache, one torch thread (tests/conftest.py)."""


def _one_line_exit_2(result, needle: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.output
    assert needle in lines[0]


@pytest.mark.parametrize("text, needle", [
    ("search: [1, 2]\n", "'search' must be a mapping"),
    ("final:\n  augment: heavy\n", "unknown augmentation policy 'heavy'"),
    ("final:\n  epochs: 0\n", "epochs must be a positive integer"),
    ("final:\n  folds: 0\n", "a recipe's folds"),
    ("final:\n  colour: red\n", "unknown key 'colour'"),
    ("search:\n  dataset: [\n", "not valid YAML"),
    ("search:\n  trails: 3\n", "unknown search option 'trails'"),
    ("steps: 3\n", "unknown section 'steps'"),
])
def test_bad_recipe_file(tmp_path, text, needle):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    db = tmp_path / "s.db"
    result = invoke(["search", "--recipe", str(path), "--storage", f"sqlite:///{db}", "--quiet"])
    _one_line_exit_2(result, needle)
    assert not db.exists()


def test_missing_recipe_file(tmp_path):
    result = invoke(["search", "--recipe", str(tmp_path / "none.yaml"), "--quiet"])
    _one_line_exit_2(result, "does not exist")


@pytest.mark.parametrize("folds", ["0", "abc", "-3", "99"])
def test_bad_ensemble_on_export(tmp_path, folds):
    result = invoke(["export", "--study", "x", "--storage", f"sqlite:///{tmp_path / 's.db'}",
                                      "--out", str(tmp_path / "out"), "--ensemble", folds])
    _one_line_exit_2(result, "--ensemble")
    assert not (tmp_path / "out").exists()


def test_the_old_spelling_of_ensemble_works_with_a_note(tmp_path):
    result = invoke(["export", "--study", "x", "--storage", f"sqlite:///{tmp_path / 's.db'}",
                                      "--out", str(tmp_path / "out"), "--folds", "0"])
    assert result.exit_code == 2
    note, error = [line for line in result.output.splitlines() if line.strip()]
    assert note.startswith("Note: export --folds is now --ensemble") and "--cv-folds" in note
    assert error.startswith("Error: --ensemble") and "got 0" in error


def test_unknown_recipe_name_on_export(tmp_path):
    result = invoke(["export", "--study", "x", "--storage", f"sqlite:///{tmp_path / 's.db'}",
                                      "--out", str(tmp_path / "out"), "--recipe", "long"])
    _one_line_exit_2(result, "unknown --recipe 'long'")


@pytest.mark.parametrize("path", sorted(STUDIES.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_recipes_read(path):
    recipe = read_recipe_file(path)
    assert isinstance(recipe.final, FinalRecipe)
    assert recipe.search["trials"] == 30 and recipe.search["dataset"]


def test_shipped_set():
    assert {p.stem for p in STUDIES.glob("*.yaml")} >= {"breastmnist-28", "breastmnist-64", "radimagenet-msk-1pct",
                                                       "pneumoniamnist-28"}
    assert read_recipe_file(STUDIES / "pneumoniamnist-28.yaml").final.flips is False


def test_search_with_a_recipe_file_stores_the_final_recipe(tmp_path):
    import optuna

    from nas_med.final import study_recipe
    from nas_med.search.records import FINAL_RECIPE

    path = tmp_path / "mine.yaml"
    path.write_text("search:\n  dataset: synthetic\n  size: 16\n  space: tiny\n  trials: 1\n  epochs: 1\n"
                    "  cam_images: 4\n  pruner: none\n  study: mine\nfinal:\n  epochs: 7\n  augment: light\n")
    db = tmp_path / "s.db"
    result = invoke(["search", "--recipe", str(path), "--storage", f"sqlite:///{db}", "--quiet",
                                      "--trials", "1"])
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="mine", storage=f"sqlite:///{db}")
    assert study.user_attrs[FINAL_RECIPE]["epochs"] == 7
    recipe = study_recipe(study)
    assert (recipe.epochs, recipe.augment) == (7, "light")
    assert study_recipe(study, "search") is None
    assert study_recipe(study, folds=3).folds == 3


def test_the_recipe_is_stored_when_the_study_is_created_so_an_interrupted_search_keeps_it(tmp_path, monkeypatch):
    import optuna

    from nas_med.search import runner
    from nas_med.search.records import FINAL_RECIPE

    def interrupted(session):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run_baselines", interrupted)  # Ctrl-C after the study exists, before any trial
    path = tmp_path / "mine.yaml"
    path.write_text("search:\n  dataset: synthetic\n  size: 16\n  space: tiny\n  trials: 1\n  epochs: 1\n"
                    "  cam_images: 4\n  pruner: none\n  study: cut\nfinal:\n  epochs: 9\n")
    db = tmp_path / "s.db"
    result = invoke(["search", "--recipe", str(path), "--storage", f"sqlite:///{db}", "--quiet"])
    assert result.exit_code == 130, result.output
    study = optuna.load_study(study_name="cut", storage=f"sqlite:///{db}")
    assert not study.trials and study.user_attrs[FINAL_RECIPE]["epochs"] == 9
