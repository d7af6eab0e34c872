"""Progress through the whole final training: piped, a line per settle run, seed and ensemble member (with its
validation loss when done) and epoch lines while a run trains; on a terminal the bar moves with every epoch."""
from __future__ import annotations

import io
import re
import time

import optuna
import pytest
from cli_invoke import invoke  # tests/cli_invoke.py
from rich.console import Console

from nas_med.cli import stages
from nas_med.data import synthetic
from nas_med.final import FinalRecipe
from nas_med.final import plan as final_plan
from nas_med.progress import emit, listening
from nas_med.search import records


@pytest.fixture
def study_with_recipe(tiny_study, tmp_path, monkeypatch):
    """A copy of the tiny study whose stored final recipe settles 2 augmentations in 2 epochs (no teacher), on small
    data."""
    study, config = tiny_study
    url = f"sqlite:///{tmp_path}/copy.db"
    optuna.copy_study(from_study_name=study.study_name, from_storage=config.storage, to_storage=url)
    copy = optuna.load_study(study_name=study.study_name, storage=url)
    recipe = FinalRecipe(epochs=2, augment=("none", "light"), warmup=0.0, distil="off")
    copy.set_user_attr(records.FINAL_RECIPE, recipe.to_dict())
    small = synthetic.load(size=16, n_train=96, n_val=48, n_test=60)
    monkeypatch.setattr(final_plan, "load_study_data", lambda s: small)
    return ["--study", study.study_name, "--storage", url]


def test_piped_export_prints_every_settle_run_seed_and_member(study_with_recipe, tmp_path, monkeypatch):
    monkeypatch.setattr(stages, "LINE_SECONDS", 0.0)  # an epoch line every epoch (default: at most 30 s apart)
    result = invoke(["export", *study_with_recipe, "--out", str(tmp_path / "model"), "--seeds",
                                      "2", "--ensemble", "2", "--bootstrap", "20", "--cam-images", "4",
                                      "--device", "cpu"])
    assert result.exit_code == 0, result.output
    out = result.output
    settles = re.findall(r"^settle: .*: choosing the final recipe on validation, lr 0.001, augment (none|light), "
                         r"seed (\d+), 2 epochs \[elapsed", out, re.M)
    assert {a for a, _ in settles} == {"none", "light"} and len(settles) >= 3
    seeds = re.findall(r"^retrain: .*\(2-fold ensemble\): seed \d+ \((\d) of 2\), 2 epochs \[", out, re.M)
    assert seeds == ["1", "2"]
    members = re.findall(r"^ensemble: .*: ensemble member (\d) of 2 \(\d+ training, \d+ held-out images\)", out,
                         re.M)
    assert members == ["1", "2", "1", "2"]
    done = re.findall(r"^  done: .*: best epoch [12] of 2, validation loss \d\.\d{4}, AUC \d\.\d{4} \[", out, re.M)
    assert len(done) == len(settles) + len(members)  # every run that trained says how it ended
    assert len(re.findall(r"^  training .*: epoch [12]/2, validation loss \d\.\d{4} \[elapsed", out, re.M)) \
        == 2 * len(done)
    assert "export: writing the folder" in out


def test_piped_front_retrain_shows_the_seed_and_its_validation_loss(study_with_recipe):
    result = invoke(["front", *study_with_recipe, "--retrain", "--seeds", "1", "--no-baselines",
                                      "--bootstrap", "20", "--device", "cpu", "--recipe", "search"])
    assert result.exit_code == 0, result.output
    assert re.search(r"^retrain: trial \d+: seed \d+ \(1 of 1\), 2 epochs \[elapsed", result.output, re.M)
    assert re.search(r"^  done: trial \d+: seed \d+: best epoch [12] of 2, validation loss \d\.\d{4}, AUC", result.output, re.M)


def test_a_long_epoch_still_prints_a_line_every_interval():
    console = Console(file=io.StringIO(), width=200)
    with stages.StageDisplay(console, tty=False, interval=0.1) as display, listening(display):
        emit("seed", 1, 1, "net: seed 0 (1 of 1), 60 epochs")
        emit("run", 0, 60, "net: seed 0")
        time.sleep(0.45)  # the first epoch outlasts the interval: the tick speaks for it
        emit("run", 1, 60, "net: seed 0", val_loss=0.5)
        time.sleep(0.3)
        emit("fitted", 1, 1, "net: seed 0", val_loss=0.5, val_auc=0.75)
    lines = console.file.getvalue().splitlines()
    assert lines[0].startswith("retrain: net: seed 0 (1 of 1), 60 epochs [elapsed")
    assert sum("training net: seed 0: epoch 1/60 running [elapsed" in line for line in lines) >= 2
    assert any("training net: seed 0: epoch 1/60, validation loss 0.5000" in line for line in lines)
    assert lines[-1].startswith("  done: net: seed 0: best epoch 1 of 1, validation loss 0.5000, AUC 0.7500")


def test_on_a_terminal_the_bar_moves_with_every_epoch():
    console = Console(file=io.StringIO(), force_terminal=True, width=120)
    with stages.StageDisplay(console, tty=True) as display, listening(display):
        emit("settle", 1, 2, "net: lr 0.001, augment none, seed 0")
        task = display.bar.tasks[0]
        assert (task.completed, task.total) == (0, 2)
        emit("run", 1, 4, "net", val_loss=0.5)
        assert task.completed == 0.25 and "epoch 1/4" in task.description
        emit("run", 4, 4, "net", val_loss=0.4)
        emit("settle", 2, 2, "net: lr 0.001, augment light, seed 0")
        emit("run", 2, 4, "net", val_loss=0.4)
        assert task.completed == 1.5 and task.description.startswith("settle: net: lr 0.001, augment light")


def test_confirm_headings_printed_with_a_folds_end_do_not_repeat_its_time_stamp():
    console = Console(file=io.StringIO(), width=200)
    with stages.StageDisplay(console, tty=False, interval=0) as display, listening(display):
        emit("confirm", 1, 2, "trial 3 (1 of 2), 1 folds", folds=1)
        emit("fold", 1, 1, "trial 3 fold 1/1")
        emit("fitted", 1, 1, "trial 3 fold 1/1", val_loss=0.5)
        emit("confirmed", 1, 2, "trial 3: 1-fold cross-validated AUC 0.8000")
        emit("confirm", 2, 2, "trial 5 (2 of 2), 1 folds", folds=1)
        emit("fold", 1, 1, "trial 5 fold 1/1")
    lines = console.file.getvalue().splitlines()
    stamps = [re.search(r" \[elapsed [^]]*\]$", line) for line in lines]
    assert [line.split(" [")[0] for line in lines] == [
        "confirm: trial 3 (1 of 2), 1 folds", "confirm: trial 3 fold 1/1", "  done: trial 3 fold 1/1: best epoch 1 of "
        "1, validation loss 0.5000", "confirm: trial 3: 1-fold cross-validated AUC 0.8000",
        "confirm: trial 5 (2 of 2), 1 folds", "confirm: trial 5 fold 1/1"]
    assert stamps[2] and not stamps[3] and not stamps[4] and stamps[5]  # the headings between carry none
