"""Before the first trial: the default-size line, a folder's pre-flight summary and the time estimate (with
baseline warnings), printed by ``nas-med search`` with piped output; the estimate's arithmetic on a fixed
calibration; the progress display's refinement."""
from __future__ import annotations

import re
import time
from types import SimpleNamespace

import numpy as np
import optuna
import pytest
from click.testing import CliRunner
from PIL import Image

from nas_med.cli.main import cli
from nas_med.cli.progress import SearchProgress
from nas_med.data import load_dataset
from nas_med.precision import resolve_precision
from nas_med.search.config import SearchConfig
from nas_med.search.estimate import TRIAL_OVERHEAD_S, Calibration, Estimate, estimate
from nas_med.space import load_space


@pytest.fixture(autouse=True)
def _isolated(isolated):
    """Own data cache, one torch thread (tests/conftest.py)."""


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("benign", "malignant"):
        for i in range(16):
            w, h = (int(v) for v in rng.integers(40, 71, 2))
            path = tmp_path / "imgs" / cls / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8)).save(path)
    return tmp_path / "imgs"


def _search(tmp_path, folder, *extra):
    args = ["search", "--dataset", f"folder:{folder}", "--space", "tiny", "--trials", "1", "--epochs", "1",
            "--cam-images", "4", "--pruner", "none", "--storage", f"sqlite:///{tmp_path}/s.db", *extra]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def test_piped_search_prints_size_summary_and_estimate_before_the_first_trial(tmp_path, folder):
    lines = _search(tmp_path, folder)
    first_trial = next(i for i, line in enumerate(lines) if line.startswith("trial "))
    head = "\n".join(lines[:first_trial])
    assert re.search(r"^size 48 px \(no --size given\): median shorter image side \d+ px", head, re.M), head
    assert re.match(r"dataset folder:\S+ \(\w+, \d+ classes.*\): train \d+ / val \d+ / test \d+ images, 48 px, "
                    r".*device cpu, precision " + resolve_precision("auto", "cpu").name, lines[0]), lines[0]  # the header: data, splits, device
    assert lines[1].startswith("size 48 px")  # then which size and why
    assert lines[2].startswith("parallel: 1 worker x 1 thread per trial (48 px images are too small to use "
                               "several threads")  # then workers and threads (one trial: one worker)
    assert "pre-flight summary of folder:" in head and "training at 1 x 48 x 48" in head
    assert "duplicates by content hash: none" in head and "skipped: none" in head
    assert re.search(r"^time estimate: ~[\d.]+ s for 1 trials x 1 epochs", head, re.M), head
    assert re.search(r"\[~\d+ s left\]", lines[first_trial])


def test_given_size_wins_and_the_summary_still_prints(tmp_path, folder):
    head = "\n".join(_search(tmp_path, folder, "--size", "16"))
    assert "no --size given" not in head and "training at 1 x 16 x 16" in head and "time estimate:" in head


def _session(size=64, baselines=(), trials=10, epochs=8, timeout=None, pruner="median"):
    data = load_dataset("synthetic", size=size)
    config = SearchConfig(dataset="synthetic", size=size, space="tiny", trials=trials, epochs=epochs,
                          baselines=baselines, timeout=timeout, pruner=pruner)
    return SimpleNamespace(config=config, data=data, space=load_space("tiny"),
                           study=optuna.create_study(directions=["maximize"] * 4))


def test_estimate_is_trials_times_epochs_times_epoch_time_plus_baselines_with_a_warning():
    cal = Calibration(overhead_s=1e-4, seconds_per_flop=1e-9, cam_s=0.5, device="cpu", seconds=1.0)
    est = estimate(_session(baselines=("resnet18",)), calibration=cal)
    assert est.total_s == pytest.approx(est.baselines_s + 10 * est.trial_s)
    median = sorted(est.candidate_epoch_s)[len(est.candidate_epoch_s) // 2]
    assert est.trial_s >= 0.725 * 8 * min(est.candidate_epoch_s) + 0.5
    unpruned = estimate(_session(baselines=("resnet18",), pruner="none"), calibration=cal)
    fixed = 0.5 + TRIAL_OVERHEAD_S  # the CAM objective and the rest of a trial outside training
    assert unpruned.trial_s - fixed == pytest.approx((est.trial_s - fixed) / 0.725)  # the pruner's epoch share
    assert "median pruner expected to train 72% of the epochs" in est.lines[0]
    assert est.baseline_epoch_s["resnet18"] > 20 * median
    assert len(est.warnings) == 1 and est.warnings[0].startswith("warning: baseline resnet18 at 64 px costs")
    assert "GFLOPs" in est.warnings[0] and "--baselines" in est.warnings[0]
    assert est.lines[0].startswith("time estimate: ~") and "+ 1 baseline" in est.lines[0]


def test_an_estimate_over_an_hour_suggests_timeout_and_a_given_timeout_is_named():
    slow = Calibration(overhead_s=0.5, seconds_per_flop=1e-6, cam_s=1.0, device="cpu", seconds=1.0)
    assert any("consider --timeout 3600" in line for line in estimate(_session(), calibration=slow).lines)
    lines = estimate(_session(timeout=600), calibration=slow).lines
    assert any("--timeout 600 s stops starting trials" in line for line in lines)


def test_progress_refines_the_estimate_as_trials_finish_without_jumping():
    progress = SearchProgress(4, quiet=True)
    est = Estimate(trials=4, epochs=1, trial_s=10.0, candidate_epoch_s=[9.0])
    progress.preflight([], est)
    assert progress.remaining() == pytest.approx(40.0, rel=0.01)
    progress.trials_start = time.monotonic() - 20.0  # the first trial took twice the prediction
    progress(optuna.create_study(), optuna.trial.create_trial(value=0.0))
    left = progress.remaining()
    assert 30.0 < left < 60.0 and progress.refinement.total <= 1.5 * 40.0  # 30 s more at 10 s each; not 60


def test_the_estimate_divides_the_trials_by_the_workers_that_run_them_at_once():
    cal = Calibration(overhead_s=1e-4, seconds_per_flop=1e-9, cam_s=0.5, device="cpu", seconds=1.0)
    one = estimate(_session(), calibration=cal)
    session = _session()
    session.config.workers = 2
    two = estimate(session, calibration=cal)
    assert two.trial_s == one.trial_s and two.parallel == 2.0
    assert one.startup_s == 0 < two.startup_s  # workers start as this process did
    assert two.total_s - two.startup_s == pytest.approx(one.total_s / 2) and "2 trials at once" in two.lines[0]
    session.config.workers = 3  # batches of 4 in two rounds: no faster than 2 workers
    assert estimate(session, calibration=cal).parallel == 2.0


@pytest.mark.parametrize("seconds, text", [(0.0, "0.00 s"), (0.14, "0.14 s"), (0.95, "0.95 s"), (2.54, "2.5 s"),
                                           (42.4, "42 s"), (390, "6.5 min"), (5400, "1.5 h")])
def test_seconds_are_shown_with_their_significant_digits(seconds, text):
    from nas_med.search.estimate import fmt_seconds

    assert fmt_seconds(seconds) == text


def test_the_calibration_times_a_real_training_epoch_and_scales_every_epoch_by_it():
    from nas_med.search.estimate import MAX_LOOP_FACTOR, calibrate, epoch_seconds

    cal = calibrate(load_dataset("synthetic", size=16), "cpu", cam_images=4)
    assert 1.0 <= cal.loop_factor <= MAX_LOOP_FACTOR and cal.cam_s > 0
    plain = Calibration(cal.overhead_s, cal.seconds_per_flop, cal.cam_s, "cpu", 1.0)
    assert epoch_seconds(cal, 1e6, 100, 30) == pytest.approx(cal.loop_factor * epoch_seconds(plain, 1e6, 100, 30))
