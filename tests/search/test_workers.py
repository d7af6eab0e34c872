"""Several workers on one study: planning, heartbeat retries, sqlite with four processes, Ctrl-C and resume."""
from __future__ import annotations

import os
import signal
import threading
import time

import optuna
import pytest
from click.testing import CliRunner
from optuna.trial import TrialState
from worker_processes import nas_med, queued_finished, with_epochs

from nas_med.cli.main import cli
from nas_med.errors import UserError
from nas_med.search.records import QUEUED
from nas_med.search.storage import open_storage
from nas_med.search.study import top_up_queue
from nas_med.search.workers import STORAGE_ENV, await_lost_trials, parse_gpus, plan, requeue_interrupted, worker_command

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")

TINY = ["--size", "16", "--space", "tiny", "--epochs", "1", "--cam-images", "4", "--pruner", "none",
        "--study", "w", "--quiet"]


def test_plan_divides_cores_and_spreads_gpus():
    assert plan(4, cores=2) == [(None, 1)] * 4
    assert plan(2, cores=16) == [(None, 8)] * 2
    assert plan(3, ("0", "1"), cores=12) == [("0", 4), ("1", 4), ("0", 4)]
    assert parse_gpus("0, 1") == ("0", "1") and parse_gpus(None) == ()
    with pytest.raises(UserError, match="'x' is not a GPU index"):
        parse_gpus("0,x")


def test_gpu_workers_get_one_visible_device_each_and_the_storage_by_environment(monkeypatch):
    import nas_med.search.workers as workers

    started = []

    class FakePopen:
        def __init__(self, cmd, env, **kwargs):
            started.append((cmd, env, kwargs))
            self.pid, self.stdout, self.returncode = 1000 + len(started), iter(["ready\n"]), 0

        def poll(self):
            return 0

    monkeypatch.setattr(workers.subprocess, "Popen", FakePopen)
    monkeypatch.setattr(workers, "cpu_cores", lambda: 12)
    lines = []
    procs = workers.start_workers("s", "postgresql+psycopg://u:pw@h/db", 3, gpus=("0", "1"),
                                  sink=lambda i, line: lines.append((i, line)))
    for proc in procs:
        proc.reader.join(timeout=5)
    assert [env["CUDA_VISIBLE_DEVICES"] for _, env, _ in started] == ["0", "1", "0"]
    # threads by --threads only: an OMP/MKL thread variable would change MKL's sums (tests/search/test_reproducible)
    assert all(env[STORAGE_ENV] == "postgresql+psycopg://u:pw@h/db"
               and env.get("MKL_NUM_THREADS") == os.environ.get("MKL_NUM_THREADS") for _, env, _ in started)
    for cmd, _, kwargs in started:
        assert cmd[cmd.index("--device") + 1] == "cuda" and cmd[cmd.index("--threads") + 1] == "4"
        assert "pw" not in " ".join(cmd) and kwargs["start_new_session"]
    assert sorted(lines) == [(1, "ready"), (2, "ready"), (3, "ready")]


def test_failed_workers_are_reported_with_their_last_line_when_trials_are_left(monkeypatch, tmp_path):
    import types

    import nas_med.search.workers as workers
    from nas_med.search import SearchConfig

    class FailingPopen:
        def __init__(self, cmd, env, **kwargs):
            self.pid, self.returncode = 4242, 2
            self.stdout = iter(["Error: --device 'cuda' asked for CUDA but no CUDA GPU is available.\n"])

        def poll(self):
            return self.returncode

    monkeypatch.setattr(workers.subprocess, "Popen", FailingPopen)
    url = f"sqlite:///{tmp_path}/f.db"
    study = optuna.create_study(study_name="f", storage=url, directions=["maximize", "minimize"])
    top_up_queue(study, 3)
    config = SearchConfig(workers=2, storage=url)
    with pytest.raises(workers.WorkersFailed) as failed:
        workers.run_local_workers(types.SimpleNamespace(study=study), config)
    message = str(failed.value)
    assert message.startswith("2 of 2 workers failed (worker 1 (pid 4242) exited with code 2: Error: --device")
    assert "3 queued trial(s) are not finished" in message and f"--storage {url}" in message


def test_journal_storage_works_but_has_no_heartbeat_so_nobody_waits(tmp_path):
    study = optuna.create_study(study_name="j", storage=open_storage(str(tmp_path / "j.log")))
    top_up_queue(study, 1)
    study.ask()  # running, and no worker will ever finish it
    assert not await_lost_trials(study)
    assert optuna.load_study(study_name="j", storage=open_storage(str(tmp_path / "j.log"))).trials[0].user_attrs[
        QUEUED]


def test_worker_with_one_gpu_sees_only_that_gpu(monkeypatch, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("checks the message on a machine without CUDA")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # restored afterwards: the command sets it in-process
    result = CliRunner().invoke(cli, ["worker", "--study", "s", "--storage", f"sqlite:///{tmp_path}/x.db",
                                      "--gpus", "3"])
    assert result.exit_code == 2 and "asked for CUDA but no CUDA GPU is available" in result.stderr
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"


def test_worker_takes_its_storage_from_the_environment_not_the_command_line(tmp_path):
    assert not any("sqlite" in part or "--storage" == part for part in worker_command("s", threads=2))
    url = f"sqlite:///{tmp_path}/empty.db"
    result = CliRunner().invoke(cli, ["worker", "--study", "nope"], env={STORAGE_ENV: url})
    assert result.exit_code == 2 and f"{tmp_path}/empty.db' does not exist" in result.stderr


def _study_with_running_trial(tmp_path, monkeypatch, heartbeat: str = "1"):
    monkeypatch.setenv("NAS_MED_HEARTBEAT_SECONDS", heartbeat)
    storage = open_storage(f"sqlite:///{tmp_path}/hb.db")
    study = optuna.create_study(study_name="hb", storage=storage, directions=["maximize", "minimize"])
    top_up_queue(study, 1)
    trial = study.ask()  # takes the queued trial, as a worker does
    trial.suggest_int("width", 4, 64)
    return study, trial


def test_a_stale_trial_is_requeued_and_stays_in_the_budget(tmp_path, monkeypatch):
    study, trial = _study_with_running_trial(tmp_path, monkeypatch)
    study._storage.record_heartbeat(trial._trial_id)  # then its worker "dies": no more heartbeats
    started = time.monotonic()
    assert await_lost_trials(study)  # waits out the grace period (2 s), then fails and re-queues it
    assert time.monotonic() - started >= 1.5
    trials = study.get_trials(deepcopy=False)
    assert trials[trial.number].state == TrialState.FAIL
    retry = trials[-1]
    assert retry.state == TrialState.WAITING and retry.system_attrs["failed_trial"] == trial.number
    assert retry.user_attrs[QUEUED] is True  # accepted by the queued objective
    assert retry.params == {"width": trial.params["width"]}  # the same architecture is re-run
    assert len(study.get_trials(states=(TrialState.WAITING,))) == 1


def test_a_worker_waiting_on_another_workers_last_trial_exits_soon_after_it_ends(tmp_path, monkeypatch):
    """The last trials of a search end on different workers: the one that finished first waits (a heartbeat may go
    stale) but leaves within a poll of the other's end, not after half a heartbeat interval (it was 10 s)."""
    study, trial = _study_with_running_trial(tmp_path, monkeypatch, heartbeat="30")
    study._storage.record_heartbeat(trial._trial_id)
    finisher = threading.Timer(0.5, lambda: study.tell(trial, [0.9, 1.0]))
    started = time.monotonic()
    finisher.start()
    try:
        assert not await_lost_trials(study)
    finally:
        finisher.join()
    assert 0.4 <= time.monotonic() - started < 3


def test_no_wait_for_a_running_trial_without_heartbeat(tmp_path, monkeypatch):
    study, _ = _study_with_running_trial(tmp_path, monkeypatch)  # the queue is empty; trial 0 has no heartbeat
    started = time.monotonic()
    assert not await_lost_trials(study) and time.monotonic() - started < 1


def test_an_interrupted_trial_is_requeued(tmp_path, monkeypatch):
    study, trial = _study_with_running_trial(tmp_path, monkeypatch, heartbeat="0")
    number = requeue_interrupted(study, trial._trial_id)
    trials = study.get_trials(deepcopy=False)
    assert trials[trial.number].state == TrialState.FAIL
    assert number == trials[-1].number and trials[-1].state == TrialState.WAITING
    assert trials[-1].user_attrs[QUEUED] and trials[-1].params == trial.params


@pytest.mark.slow
def test_sigterm_stops_a_worker_like_docker_stop_and_requeues_its_trial(tmp_path):
    url = f"sqlite:///{tmp_path}/term.db"
    init = nas_med("search", "--storage", url, "--trials", "1", "--workers", "0", *with_epochs(TINY, 40),
                   cwd=tmp_path)
    assert init.wait(timeout=300) == 0, init.stderr.read()
    worker = nas_med("worker", "--study", "w", "--storage", url, "--threads", "1", cwd=tmp_path)
    deadline, training = time.monotonic() + 300, []
    while not training and time.monotonic() < deadline and worker.poll() is None:
        time.sleep(0.3)
        study = optuna.load_study(study_name="w", storage=url)
        training = [t for t in study.get_trials(states=(TrialState.RUNNING,)) if "spec" in t.user_attrs]
    assert training, "no trial started training"
    worker.send_signal(signal.SIGTERM)
    out, err = worker.communicate(timeout=120)
    assert worker.returncode == 130 and "Interrupted" in err and "Traceback" not in err
    trials = optuna.load_study(study_name="w", storage=url).get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]
    assert trials[1].system_attrs["failed_trial"] == training[0].number and trials[1].user_attrs[QUEUED]


@pytest.mark.slow
def test_four_workers_share_one_sqlite_file_without_lock_errors(tmp_path):
    url = f"sqlite:///{tmp_path}/four.db"
    proc = nas_med("search", "--storage", url, "--trials", "6", "--workers", "4", *TINY, cwd=tmp_path)
    out, err = proc.communicate(timeout=420)
    assert proc.returncode == 0, err
    assert "locked" not in err and "Traceback" not in err and "OperationalError" not in err, err
    study = optuna.load_study(study_name="w", storage=url)
    done = queued_finished(study)
    assert len(done) == 6 and not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    workers = {t.user_attrs["worker"] for t in done}
    assert len(workers) >= 2 and not any(w.endswith(f":{proc.pid}") for w in workers)
    assert err.count("trial ") >= 6  # the parent's combined progress: one line per finished trial


@pytest.mark.slow
def test_ctrl_c_stops_workers_requeues_their_trials_and_a_worker_resumes(tmp_path):
    url = f"sqlite:///{tmp_path}/stop.db"
    proc = nas_med("search", "--storage", url, "--trials", "3", "--workers", "2", *with_epochs(TINY, 40),
                   cwd=tmp_path)
    deadline = time.monotonic() + 300
    running: list = []
    while not running and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
        try:
            study = optuna.load_study(study_name="w", storage=url)
            running = [t for t in study.get_trials(states=(TrialState.RUNNING,)) if "worker" in t.user_attrs]
        except KeyError:
            continue
    assert running, "no trial started"
    pids = {int(t.user_attrs["worker"].rsplit(":", 1)[1]) for t in running}
    proc.send_signal(signal.SIGINT)  # what Ctrl-C in a terminal sends to the foreground process
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Interrupted" in err and "Traceback" not in err
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    study = optuna.load_study(study_name="w", storage=url)
    assert not study.get_trials(states=(TrialState.RUNNING,))
    requeued = {t.system_attrs["failed_trial"] for t in study.get_trials(states=(TrialState.WAITING,))
                if "failed_trial" in t.system_attrs}
    assert requeued, "no running trial was re-queued"
    for t in running:  # each was still running at Ctrl-C (re-queued) or had just finished
        assert t.number in requeued or study.trials[t.number].state in (TrialState.COMPLETE, TrialState.PRUNED)
    # the stopped search resumes: one worker runs what is left, and the budget of 3 is met exactly
    resumed = nas_med("worker", "--study", "w", "--storage", url, "--threads", "1", cwd=tmp_path)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    study = optuna.load_study(study_name="w", storage=url)
    assert len(queued_finished(study)) == 3
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
