"""``nas-med sweep``: a 2 x 2 grid on synthetic data yields 4 studies and a tested choice per point, re-running
adds no trial, the report section rebuilds from storage, and bad input exits 2 before anything is written."""
from __future__ import annotations

import csv
import json
import re

import optuna
import pytest
from cli_invoke import invoke  # tests/cli_invoke.py

from nas_med.report.sweep import sweep_section_html
from nas_med.search.records import SWEEP, SWEEP_POINT, SWEEP_RESULTS
from nas_med.sweep import sweep_of, sweep_studies

GRID = ["sweep", "--dataset", "synthetic", "--fractions", "0.5,1.0", "--sizes", "16,24", "--space", "tiny",
        "--trials-per-point", "2", "--epochs", "1", "--seeds", "1", "--cam-images", "4", "--pruner", "none",
        "--sweep", "t", "--quiet"]
POINTS = ["t:f0.5-s16", "t:f0.5-s24", "t:f1-s16", "t:f1-s24"]


def _invoke(args: list[str]):
    result = invoke(args, threads=1)  # 16-24 px nets on a shared 2-core machine: one thread is faster
    return result, result.output  # stdout and stderr, interleaved


def _trial_counts(storage: str) -> dict[str, int]:
    return {s.study_name: s.n_trials for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory):
    """The grid run once through the CLI: (storage URL, out folder, CLI args, console output)."""
    folder = tmp_path_factory.mktemp("sweep")
    storage = f"sqlite:///{folder}/nas-med.db"
    args = GRID + ["--storage", storage, "--out", str(folder / "out")]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NAS_MED_CACHE", str(folder / "cache"))
        result, output = _invoke(args)
    assert result.exit_code == 0, output
    return storage, folder / "out", args, output


def test_grid_yields_a_tested_choice_per_point(sweep_run):
    storage, out, _, output = sweep_run
    counts = _trial_counts(storage)
    assert sorted(counts) == POINTS  # no shadow study with --pruner none, nothing else
    assert all(n == 2 for n in counts.values())
    for study in sweep_studies("t", storage):
        assert study.user_attrs[SWEEP]["points"] == POINTS
        point = study.user_attrs[SWEEP_POINT]
        assert study.study_name == f"t:f{point['fraction']:g}-s{point['size']}"
        assert study.user_attrs["nas_med_config"]["size"] == point["size"]
        assert study.user_attrs["nas_med_config"]["fraction"] == point["fraction"]
        tested = study.user_attrs[SWEEP_RESULTS]["minimalist"]
        assert tested["seeds"] == [study.trials[tested["trial"]].user_attrs["train_config"]["seed"]]  # --seeds 1
    with (out / "sweep.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["fraction"], r["size"], r["architecture"]) for r in rows] == [
        ("0.5", "16", "minimalist"), ("0.5", "24", "minimalist"), ("1.0", "16", "minimalist"),
        ("1.0", "24", "minimalist")]
    assert {r["train_images"] for r in rows} == {"300", "600"}  # synthetic has 600 training images
    for r in rows:
        assert r["summary"] and "|" in r["summary"]  # a one-line architecture
        assert 0 <= float(r["test_auc_low"]) <= float(r["test_auc"]) <= float(r["test_auc_high"]) <= 1
        assert int(r["params"]) > 0 and int(r["blocks"]) >= 2 and r["depth"]
    data = json.loads((out / "sweep.json").read_text())
    assert data["sweep"] == "t" and len(data["rows"]) == 4
    for name in ("auc_vs_fraction.png", "depth_vs_size.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "test AUC" in output and output.count("minimalist") >= 4
    # the final training of each point's choice shows its runs: settle variants, the seed, how each run ended
    assert len(re.findall(r"^settle: trial \d+: choosing the final recipe on validation", output, re.M)) >= 4 * 2
    assert len(re.findall(r"^retrain: trial \d+: seed \d+ \(1 of 1\)", output, re.M)) == 4
    assert len(re.findall(r"^  done: trial \d+: .*validation loss \d\.\d{4}", output, re.M)) >= 4 * 2


def test_rerun_resumes_without_new_trials(sweep_run):
    storage, _, args, _ = sweep_run
    before = _trial_counts(storage)
    results = {s.study_name: s.user_attrs[SWEEP_RESULTS] for s in sweep_studies("t", storage)}
    result, output = _invoke(args)
    assert result.exit_code == 0, output
    assert _trial_counts(storage) == before
    assert {s.study_name: s.user_attrs[SWEEP_RESULTS] for s in sweep_studies("t", storage)} == results  # not retested
    assert "retraining" not in output


def test_report_section_rebuilds_from_storage(sweep_run):
    storage, *_ = sweep_run
    study = optuna.load_study(study_name="t:f1-s24", storage=storage)
    assert sweep_of(study) == "t"
    html = sweep_section_html(sweep_of(study), storage)
    assert html.count("data:image/png;base64,") == 2
    assert html.count("<td>minimalist</td>") == 4
    with pytest.raises(Exception, match="no study of sweep 'missing'"):
        sweep_section_html("missing", storage)


def test_report_of_a_sweep_study_includes_the_sweep(sweep_run, tmp_path):
    storage, *_ = sweep_run
    result, output = _invoke(["report", "--study", "t:f1-s24", "--storage", storage, "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, output
    page = (tmp_path / "r" / "index.html").read_text()
    assert "class='sweep'" in page and page.count("<td>minimalist</td>") == 4


@pytest.mark.parametrize("change, message", [
    ({"--fractions": "0.5,1.5"}, "got 1.5"),
    ({"--fractions": " , "}, "at least one fraction"),
    ({"--fractions": "0.5,half"}, "'half'"),
    ({"--sizes": "16,abc"}, "'abc'"),
    ({"--sizes": "16,4"}, "got 4"),
    ({"--baselines": "resnet81"}, "Did you mean 'resnet18'"),
    ({"--space": "SIZED"}, "searches input_size"),
])
def test_bad_input_exits_2_and_writes_nothing(tmp_path, change, message):
    space = tmp_path / "sized.yaml"
    space.write_text("name: sized\narch:\n  block: [simple]\n  input_size: [16, 24]\n")
    args = list(GRID)
    for option, value in change.items():
        if option not in args:
            args += [option, ""]
        args[args.index(option) + 1] = value.replace("SIZED", str(space))
    db = tmp_path / "db" / "nas-med.db"
    result, output = _invoke(args + ["--storage", f"sqlite:///{db}", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, output
    assert output.startswith("Error: ") and message in output and "Traceback" not in output
    assert not db.exists() and not (tmp_path / "out").exists()


def test_larger_budget_tops_up_only_the_difference(sweep_run):
    """Last (it grows one point): --trials-per-point 3 on one point adds exactly one candidate there."""
    storage, out, args, _ = sweep_run
    before = _trial_counts(storage)
    args = list(args)
    for option, value in {"--fractions": "1.0", "--sizes": "16", "--trials-per-point": "3"}.items():
        args[args.index(option) + 1] = value
    result, output = _invoke(args)
    assert result.exit_code == 0, output
    after = _trial_counts(storage)
    assert after == {**before, "t:f1-s16": before["t:f1-s16"] + 1}
    study = optuna.load_study(study_name="t:f1-s16", storage=storage)
    assert sum(bool(t.user_attrs.get("queued")) for t in study.trials) == 3
    tested = study.user_attrs[SWEEP_RESULTS]["minimalist"]
    with (out / "sweep.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["point"], r["trial"]) for r in rows] == [("f1-s16", str(tested["trial"]))]  # this run's points
