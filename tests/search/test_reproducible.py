"""Reproducible searches: batched proposals (hand-made values, no training), the modelled epoch time, the
study's fixed threads and its record."""
from __future__ import annotations

import math
import subprocess
import sys
import threading

import optuna
import pytest
import torch
from click.testing import CliRunner
from optuna.trial import TrialState
from test_pruning import run  # tests/search is on the path, as for worker_processes

from nas_med.arch import build, spec_cost
from nas_med.cli.main import cli
from nas_med.data import load_dataset
from nas_med.errors import UserError
from nas_med.objectives.epoch_cost import FEATURES, REFERENCE_CPU, CostModel, EpochWork, steps_per_epoch
from nas_med.search import SearchConfig, search
from nas_med.search import records as rec
from nas_med.search.batches import GiveBack, wait_for_earlier_batches
from nas_med.search.config import DIRECTIONS
from nas_med.search.pruning import shadow_study
from nas_med.search.reproducibility import Record, differences, study_threads
from nas_med.search.study import make_sampler, top_up_queue
from nas_med.train import TrainConfig, train

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


def _suggest(trial) -> dict:
    """A small conditional space, as nas-med's is."""
    block = trial.suggest_categorical("block", ["a", "b"])
    width = trial.suggest_int(f"width_{block}", 1, 64, log=True)
    return {"block": block, "width": width, "lr": trial.suggest_float("lr", 1e-4, 1e-1, log=True)}


def _values(params: dict) -> list[float]:
    """Deterministic objective values of hand-made candidates."""
    w = params["width"]
    return [1 - abs(math.log(params["lr"]) + 5) / 10 + (0.01 if params["block"] == "a" else 0), w * 100.0, w * 0.01,
            (w % 7) / 7]


def _run(order_in_batch, batch=4, slots=16, seed=3) -> dict[int, dict]:
    """Ask/tell a study whose trials of each batch start together and finish in ``order_in_batch`` order."""
    study = optuna.create_study(directions=list(DIRECTIONS), sampler=make_sampler("tpe", seed, batch))
    top_up_queue(study, slots)
    params: dict[int, dict] = {}
    for first in range(0, slots, batch):
        running = [study.ask() for _ in range(batch)]  # all of the batch start before any finishes
        done = {t.user_attrs[rec.SLOT]: (t, _suggest(t)) for t in running}
        for i in order_in_batch:
            trial, p = done[first + i]
            params[first + i] = p
            study.tell(trial, _values(p))
    return params


def test_batched_proposals_do_not_depend_on_the_order_trials_finish():
    in_order = _run([0, 1, 2, 3])
    assert _run([3, 1, 0, 2]) == in_order
    assert len({tuple(sorted(p.items())) for p in in_order.values()}) == len(in_order)  # slots differ


def test_batches_see_earlier_batches_only_and_tpe_takes_over_after_its_start_up():
    # with batches of 16 every trial is one of the first 16: all random, so the batch of 4 must differ after 8
    a, b = _run([0, 1, 2, 3], batch=4), _run(list(range(16)), batch=16)
    assert all(a[s] == b[s] for s in range(8)) and any(a[s] != b[s] for s in range(8, 16))


def test_top_up_gives_each_queued_trial_the_next_slot():
    study = optuna.create_study(directions=list(DIRECTIONS))
    assert top_up_queue(study, 3) == 3 and top_up_queue(study, 5) == 2
    assert [t.user_attrs[rec.SLOT] for t in study.trials] == [0, 1, 2, 3, 4]


def test_a_trial_waits_for_earlier_batches_and_gives_back_when_one_of_them_is_queued():
    study = optuna.create_study(directions=list(DIRECTIONS))
    top_up_queue(study, 4)
    first, second = study.ask(), study.ask()  # slots 0 and 1: batch 0 of 2
    wait_for_earlier_batches(study, 1, 2)  # its own batch: no wait
    with pytest.raises(GiveBack, match="time ran out"):
        wait_for_earlier_batches(study, 2, 2, deadline=0)
    threading.Timer(0.3, lambda: [study.tell(first, [0.5, 1, 1, 0]), study.tell(second, [0.5, 1, 1, 0])]).start()
    wait_for_earlier_batches(study, 2, 2)  # returns once both have finished
    study.enqueue_trial({}, user_attrs={rec.QUEUED: True, rec.SLOT: 1})  # slot 1 queued again (a lost worker)
    with pytest.raises(GiveBack, match="slot 3 waits for slot 1"):
        wait_for_earlier_batches(study, 3, 2)


def test_pruning_in_batches_compares_only_with_earlier_batches():
    storage = optuna.storages.InMemoryStorage()
    real = optuna.create_study(study_name="s", storage=storage, directions=list(DIRECTIONS))
    shadow = shadow_study("s", storage, "median", epochs=8)
    top_up_queue(real, 10)

    for _ in range(8):  # slots 0-7: good curves
        assert run(real, shadow, [0.9] * 4)[0] == "complete"
    from nas_med.search.batches import before

    assert run(real, shadow, [0.5] * 4, visible=lambda t: before(t, 8))[0] == "pruned"  # earlier batches seen
    assert run(real, shadow, [0.5] * 4, visible=lambda t: before(t, 0))[0] == "complete"  # none: never pruned


def test_a_candidate_is_pruned_only_if_dominated_on_its_modelled_epoch_time_too():
    storage = optuna.storages.InMemoryStorage()
    real = optuna.create_study(study_name="s", storage=storage, directions=list(DIRECTIONS))
    shadow = shadow_study("s", storage, "median", epochs=8)
    for _ in range(4):
        run(real, shadow, [0.9] * 4, cost={rec.PARAMS: 100, rec.EPOCH_SECONDS_MODEL: 1.0})
    faster = {rec.PARAMS: 100, rec.EPOCH_SECONDS_MODEL: 0.5, rec.FLOPS: 10**9}  # more FLOPs, but a faster epoch
    assert run(real, shadow, [0.5] * 4, cost=faster)[0] == "complete"
    assert run(real, shadow, [0.5] * 4, cost={**faster, rec.EPOCH_SECONDS_MODEL: 2.0})[0] == "pruned"


def test_cost_model_round_trips_and_refuses_bad_coefficients():
    assert CostModel.from_dict(REFERENCE_CPU.to_dict()) == REFERENCE_CPU
    with pytest.raises(UserError, match="non-negative"):
        CostModel("x", "ref", (1.0,) * (len(FEATURES) - 1) + (-1.0,))
    with pytest.raises(UserError, match="features"):
        CostModel.from_dict({**REFERENCE_CPU.to_dict(), "features": ["step"]})


@pytest.mark.parametrize("n, batch", [(40, 8), (41, 8), (10, 8), (15, 8), (16, 8)])
def test_steps_per_epoch_is_what_training_runs(n, batch):
    from nas_med.data import synthetic

    data = synthetic.load(size=16, n_train=n, n_val=20, n_test=4)
    calls = []
    model = build(_tiny_spec(data))
    model.register_forward_hook(lambda m, i, o: calls.append(m.training))
    n_train = len(data.train.images)
    train(model, data, TrainConfig(epochs=1, batch_size=batch, device="cpu", precision="fp32"))
    assert sum(calls) == steps_per_epoch(n_train, batch)


def _tiny_spec(data):
    from nas_med.space import load_space, sample

    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    return sample(trial, load_space("tiny"), in_channels=data.in_channels, num_classes=data.num_classes,
                  input_size=data.size)


def test_the_objective_is_the_cost_model_and_the_measured_time_is_kept(isolated, tmp_path):
    study = search(SearchConfig(size=16, space="tiny", trials=3, epochs=1, cam_images=4, pruner="none",
                                storage=f"sqlite:///{tmp_path}/s.db", quiet=True, artifacts=False))
    data = load_dataset("synthetic", size=16, seed=0)
    model = CostModel.from_dict(rec.stored_config(study)["epoch_cost_model"])
    for t in study.get_trials(states=(TrialState.COMPLETE,)):
        spec, cfg = rec.trial_recipe(t)
        work = EpochWork.of(spec_cost(spec), cfg.batch_size, len(data.train.images), data.train.images[0].numel())
        assert t.values[2] == model.epoch_seconds(work) > 0
        assert rec.measured_epoch_seconds(t) > 0 and t.user_attrs[rec.LAYERS] > 0
    record = Record.from_dict(study.user_attrs[rec.REPRODUCIBILITY])
    assert record.threads == 1 and record.epoch_time == REFERENCE_CPU.name and record.trial_batch == 4
    out = CliRunner().invoke(cli, ["front", "--study", study.study_name, "--storage", f"sqlite:///{tmp_path}/s.db"],
                             terminal_width=250)
    assert out.exit_code == 0 and "measured s" in out.output and "Reproducibility:" in out.output


def test_a_study_from_before_keeps_measuring_and_sampling_as_it_did():
    old = SearchConfig.from_resolved({"dataset": "synthetic", "seed": 0})
    assert (old.epoch_time, old.trial_batch, old.threads) == ("measured", 0, None)
    from nas_med.search.config import stored_cost_model

    assert stored_cost_model({"dataset": "synthetic"}) is None


def test_threads_are_the_studys_inside_and_the_processs_outside():
    before = torch.get_num_threads()
    with study_threads(SearchConfig(threads=before + 1)):
        assert torch.get_num_threads() == before + 1
    assert torch.get_num_threads() == before


def test_a_different_record_is_named():
    a = Record("0.1", "2", "5", "cpu: X", "bf16", 2, "m", 4)
    b = Record("0.1", "2", "5", "cpu: Y", "bf16", 1, "m", 4)
    assert differences(a, b) == ["device: study 'cpu: X', here 'cpu: Y'", "threads: study 2, here 1"]


@pytest.mark.parametrize("args, bad", [(["--threads", "0"], "--threads"), (["--trial-batch", "-1"], "--trial-batch"),
                                       (["--epoch-time", "wall"], "wall")])
def test_bad_reproducibility_options_are_one_line_and_exit_2(args, bad, tmp_path):
    out = CliRunner().invoke(cli, ["search", "--storage", f"sqlite:///{tmp_path}/x.db", *args])
    assert out.exit_code == 2 and bad in out.output and "Traceback" not in out.output
    assert not (tmp_path / "x.db").exists()


BUSY = "while True:\n    pass\n"


@pytest.mark.slow
def test_the_same_search_repeats_exactly_beside_a_busy_process_and_with_two_workers(tmp_path):
    """Same seed, data, space and settings: the same value tuples per slot, one worker alone, and loaded with the
    default workers (one single-threaded trial per core at 16 px: 2 workers on 2 cores); the threads per trial are
    the default's (1 at 16 px) in both."""
    common = ["search", "--size", "16", "--space", "tiny", "--epochs", "2", "--trials", "4", "--trial-batch", "2",
              "--cam-images", "4", "--study", "r", "--quiet"]

    def run(name: str, *extra: str) -> dict:
        url = f"sqlite:///{tmp_path}/{name}.db"
        proc = subprocess.run([sys.executable, "-c", "from nas_med.cli.main import main; main()", *common,
                               "--storage", url, *extra], capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        study = optuna.load_study(study_name="r", storage=url)
        return {t.user_attrs[rec.SLOT]: (t.state, t.user_attrs.get(rec.SUMMARY), t.values,
                                         len(t.user_attrs.get(rec.HISTORY) or []))
                for t in study.trials if "given back" not in t.user_attrs.get(rec.STOP_REASON, "")}

    alone = run("alone", "--workers", "1")
    busy = subprocess.Popen([sys.executable, "-c", BUSY])
    try:
        loaded = run("loaded")
    finally:
        busy.kill()
        busy.wait()
    assert loaded == alone
    assert any(state == TrialState.COMPLETE for state, *_ in alone.values())


def test_a_resumed_study_keeps_the_settings_it_was_created_with(isolated, tmp_path):
    url = f"sqlite:///{tmp_path}/old.db"
    base = dict(size=16, space="tiny", epochs=1, cam_images=4, pruner="none", storage=url, quiet=True, artifacts=False)
    search(SearchConfig(trials=1, epoch_time="measured", trial_batch=0, threads=1, **base))
    resumed = SearchConfig(trials=1, **base)  # today's defaults: model, batches of 4
    study = search(resumed)
    assert (resumed.epoch_time, resumed.trial_batch, resumed.threads) == ("measured", 0, 1)
    last = study.get_trials(states=(TrialState.COMPLETE,))[-1]
    assert last.values[2] == rec.measured_epoch_seconds(last) and rec.EPOCH_SECONDS_MODEL not in last.user_attrs


def test_a_worker_that_differs_from_the_study_is_warned_by_name(caplog):
    from nas_med.search.reproducibility import check

    stored = Record("0.1", "2", "5", "cpu: X", "bf16", 2, "m", 4).to_dict()
    with caplog.at_level("WARNING"):
        assert check(stored, Record("0.1", "2", "5", "cpu: X", "fp32", 2, "m", 4), "s") == [
            "precision: study 'bf16', here 'fp32'"]
    assert "study 's'" in caplog.text and "precision" in caplog.text
    assert check(None, Record("0.1", "2", "5", "cpu: X", "fp32", 2, "m", 4), "s") == []
