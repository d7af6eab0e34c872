"""Several worker processes on one study: local launch (one per GPU, or a share of the CPU cores each), a
combined progress read from the study, a clean Ctrl-C, and the wait that lets a lost worker's trial be re-run.

The budget lives in the study (a queue of WAITING trials, see ``study.top_up_queue``), so any number of
workers, local or on other machines (``nas-med worker``), together run exactly the queued trials.
"""
from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from ..errors import UserError
from ._optuna_private import heartbeat_enabled, record_heartbeat, storage_of, trial_id, trials_with_heartbeat
from .records import QUEUED, STOP_REASON
from .reproducibility import cpu_cores
from .storage import DEFAULT_STORAGE, MAX_RETRY, close_shadow_trial, mask_url
from .study import waiting

log = logging.getLogger(__name__)

GPU_ENV = "CUDA_VISIBLE_DEVICES"
STORAGE_ENV = "NAS_MED_STORAGE"  # the worker reads its storage URL from here: no password on a command line
POLL_SECONDS = 1.0
STOP_SECONDS = 20.0  # after Ctrl-C, how long workers get to close their trial before SIGKILL
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
_ENTRY = "from nas_med.cli.main import main; main()"
_LOG_PREFIX = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: ")


class WorkersFailed(RuntimeError):
    """Local workers exited non-zero and queued trials were left unrun; the message says which and why."""


@dataclass
class WorkerProcess:
    """One local ``nas-med worker`` process and the last lines it wrote."""

    index: int
    popen: subprocess.Popen
    gpu: str | None = None
    threads: int = 1
    tail: deque = field(default_factory=lambda: deque(maxlen=20))
    reader: threading.Thread | None = None

    def outcome(self) -> str:
        """'exited with code 2: <its last line>' or 'was killed by SIGKILL'."""
        code = self.popen.returncode
        if code is not None and code < 0:
            try:
                what = f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                what = f"was killed by signal {-code}"
        else:
            what = f"exited with code {code}"
        last = next((line for line in reversed(self.tail) if line.strip()), "")
        return f"worker {self.index} (pid {self.popen.pid}) {what}" + (f": {last.strip()}" if last else "")


def parse_gpus(text: str | None) -> tuple[str, ...]:
    """``'0,1'`` -> ``('0', '1')``; GPU indices or UUIDs as CUDA_VISIBLE_DEVICES accepts them."""
    if text is None or not str(text).strip():
        return ()
    items = tuple(item.strip() for item in str(text).split(","))
    for item in items:
        if not re.fullmatch(r"\d+|(GPU|MIG)-[0-9A-Za-z/.-]+", item):
            raise UserError(f"--gpus '{text}': '{item}' is not a GPU index (0, 1, ...) or UUID (GPU-...).")
    return items


def check_gpus(gpus: Sequence[str], device: str | None) -> None:
    """UserError when GPUs are listed but CUDA is missing, an index does not exist, or --device says otherwise."""
    if not gpus:
        return
    if device not in (None, "auto", "cuda"):
        raise UserError(f"--gpus {','.join(gpus)} needs --device auto or cuda, got '{device}'.")
    import torch

    if not torch.cuda.is_available():
        raise UserError(f"--gpus {','.join(gpus)} was given but no CUDA GPU is available.")
    count = torch.cuda.device_count()
    for gpu in gpus:
        if gpu.isdigit() and int(gpu) >= count and GPU_ENV not in os.environ:
            raise UserError(f"--gpus: there is no GPU {gpu} (this machine has {count}: 0-{count - 1}).")


def plan(n: int, gpus: Sequence[str] = (), cores: int | None = None,
         threads: int | None = None) -> list[tuple[str | None, int]]:
    """(gpu, threads) for each of ``n`` workers: GPUs round-robin; ``threads`` each (a study fixes its threads
    per trial so that its numbers repeat), else the CPU cores divided between them."""
    if n < 1:
        raise UserError(f"--workers must be at least 1, got {n}.")
    threads = threads or max(1, (cores or cpu_cores()) // n)
    return [(gpus[i % len(gpus)] if gpus else None, threads) for i in range(n)]


def worker_command(study_name: str, *, device: str | None = None, threads: int | None = None,
                   timeout: float | None = None, quiet: bool = True) -> list[str]:
    """The command line of one ``nas-med worker`` (this interpreter; the storage URL goes by environment)."""
    cmd = [sys.executable, "-c", _ENTRY, "worker", "--study", study_name]
    if device:
        cmd += ["--device", device]
    if threads:
        cmd += ["--threads", str(threads)]
    if timeout is not None:
        cmd += ["--timeout", f"{timeout:g}"]
    if quiet:
        cmd.append("--quiet")
    return cmd


def start_workers(study_name: str, storage_url: str | None, n: int, *, gpus: Sequence[str] = (),
                  device: str | None = None, timeout: float | None = None, threads: int | None = None,
                  sink: Callable[[int, str], None] | None = None) -> list[WorkerProcess]:
    """Start ``n`` local worker processes on an existing study (each in its own session, so a terminal's
    Ctrl-C reaches only this process, which then stops them in order). Their output goes to ``sink``."""
    sink = sink or (lambda i, line: log.warning("worker %d: %s", i, _LOG_PREFIX.sub("", line)))
    procs: list[WorkerProcess] = []
    try:
        for index, (gpu, each) in enumerate(plan(n, gpus, threads=threads), start=1):
            procs.append(_start_one(index, study_name, storage_url, gpu, each, device, timeout, sink))
    except BaseException:  # Ctrl-C or a failed start: leave no orphan behind
        stop_workers(procs, seconds=5)
        raise
    return procs


def _start_one(index: int, study_name: str, storage_url: str | None, gpu: str | None, threads: int,
               device: str | None, timeout: float | None, sink: Callable[[int, str], None]) -> WorkerProcess:
    # threads go by --threads (torch.set_num_threads), not OMP_NUM_THREADS/MKL_NUM_THREADS: MKL started with those
    # computes some sums differently from the searching process, so the study's numbers would not repeat
    env = dict(os.environ, **{STORAGE_ENV: storage_url or DEFAULT_STORAGE, "PYTHONUNBUFFERED": "1"})
    worker_device = device
    if gpu is not None:
        env[GPU_ENV] = gpu
        worker_device = "cuda"
    popen = subprocess.Popen(worker_command(study_name, device=worker_device, threads=threads, timeout=timeout),
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             errors="replace", bufsize=1, start_new_session=os.name == "posix")
    proc = WorkerProcess(index, popen, gpu, threads)
    proc.reader = threading.Thread(target=_forward, args=(proc, sink), daemon=True,
                                   name=f"nas-med-worker-{index}")
    proc.reader.start()
    log.info("started worker %d (pid %d, %s, %d threads)", index, popen.pid,
             f"GPU {gpu}" if gpu is not None else (device or "study's device"), threads)
    return proc


def _forward(proc: WorkerProcess, sink: Callable[[int, str], None]) -> None:
    assert proc.popen.stdout is not None
    for line in proc.popen.stdout:
        line = line.rstrip("\n")
        proc.tail.append(line)
        if line.strip():
            sink(proc.index, line)


def stop_workers(procs: Iterable[WorkerProcess], seconds: float = STOP_SECONDS) -> None:
    """SIGINT every live worker (it re-queues its running trial and exits), then SIGKILL what is left."""
    live = [p for p in procs if p.popen.poll() is None]
    for p in live:
        try:
            p.popen.send_signal(signal.SIGINT)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + seconds
    for p in live:
        try:
            p.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("worker %d (pid %d) did not stop in %.0f s; killing it (its trial will be re-run)",
                        p.index, p.popen.pid, seconds)
            p.popen.kill()
            p.popen.wait()


def _queued_finished(study: optuna.Study) -> list[FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False, states=FINISHED) if t.user_attrs.get(QUEUED)]


def watch(study: optuna.Study, procs: Sequence[WorkerProcess], callbacks: Sequence[Callable] = (),
          poll: float = POLL_SECONDS) -> None:
    """Until every worker has exited: read the study every ``poll`` seconds and call each Optuna-style
    ``callback(study, trial)`` once per newly finished queued trial. Ctrl-C (or SIGTERM) stops the workers."""
    seen = {t.number for t in _queued_finished(study)}
    deferred: dict[int, int] = {}

    def report() -> None:
        trials = _queued_finished(study)
        retried = {t.system_attrs.get("failed_trial") for t in study.get_trials(deepcopy=False)}
        for trial in sorted(trials, key=lambda t: t.number):
            if trial.number in seen:
                continue
            if trial.number in retried:  # a lost or interrupted trial: its re-queued copy is what counts
                seen.add(trial.number)
                continue
            if trial.state == TrialState.FAIL and STOP_REASON not in trial.user_attrs:
                deferred[trial.number] = deferred.get(trial.number, 0) + 1
                if deferred[trial.number] < 3:  # its retry may be a moment behind
                    continue
            seen.add(trial.number)
            for callback in callbacks:
                callback(study, trial)

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        while any(p.popen.poll() is None for p in procs):
            report()
            time.sleep(poll)
        report()
    except KeyboardInterrupt:
        log.warning("interrupted: stopping %d worker(s)", sum(p.popen.poll() is None for p in procs))
        stop_workers(procs)
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        for p in procs:
            if p.reader is not None:
                p.reader.join(timeout=5)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def unfinished(study: optuna.Study) -> int:
    """Queued trials not finished: waiting, or running (possibly on a worker that died)."""
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    return waiting(study) + sum(1 for t in running if t.user_attrs.get(QUEUED))


def run_local_workers(session, config, callbacks: Sequence[Callable] = ()) -> list[WorkerProcess]:
    """Run the study's queued trials with ``config.workers`` local processes (``config.gpus``: one
    per listed GPU, round-robin) and wait for them. The study already exists (``prepare`` ran here), so the
    workers only load it; this process holds no database lock while they run (it only reads, once a second).
    A worker that exits non-zero is logged; WorkersFailed is raised when queued trials were left unrun."""
    study: optuna.Study = session.study
    gpus = tuple(config.gpus)
    n = max(config.workers, len(gpus))
    check_gpus(gpus, config.device)
    storage = config.storage or DEFAULT_STORAGE
    device = None if gpus else config.device
    procs = start_workers(study.study_name, storage, n, gpus=gpus, device=device, timeout=config.timeout,
                          threads=config.threads)
    watch(study, procs, callbacks)
    failed = [p for p in procs if p.popen.returncode != 0]
    for p in failed:
        log.warning("%s", p.outcome())
    left = unfinished(study)
    if failed and left:
        raise WorkersFailed(
            f"{len(failed)} of {len(procs)} workers failed ({'; '.join(p.outcome() for p in failed)}); "
            f"{left} queued trial(s) are not finished. Run `nas-med worker --study {study.study_name} "
            f"--storage {mask_url(storage)}` (or the same search) to finish them.")
    return procs


def await_lost_trials(study: optuna.Study, deadline: float | None = None) -> bool:
    """Once the queue is empty: while queued trials still run elsewhere, check their heartbeats, so that the
    trial of a worker that died is failed and re-queued. True when a trial waits again (run it), False when
    no queued trial with a heartbeat is running (or ``deadline``, a ``time.monotonic()`` value, passed). It looks
    every ``POLL_SECONDS``: a worker that waits here for the last trials of others exits as soon as they end."""
    storage = storage_of(study)
    if not heartbeat_enabled(storage):
        return False
    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        if waiting(study) > 0:
            return True
        running = [trial_id(t) for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                   if t.user_attrs.get(QUEUED)]
        if not _with_heartbeat(storage, running):
            return False
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)


def _with_heartbeat(storage, trial_ids: list[int]) -> list[int]:
    """The trials among ``trial_ids`` that have recorded a heartbeat (only those can go stale)."""
    if not trial_ids:
        return []
    try:  # without the (private) query, do not wait: never hang on a trial
        return trials_with_heartbeat(storage, trial_ids)
    except Exception as exc:  # noqa: BLE001
        log.debug("could not read heartbeats: %s", exc)
        return []


def requeue_interrupted(study: optuna.Study, trial_id: int) -> int | None:
    """Re-queue a queued trial that this process just failed because it was interrupted (Ctrl-C, SIGTERM),
    as a heartbeat-stale trial would be; returns the new trial's number, or None."""
    try:
        trial = storage_of(study).get_trial(trial_id)
    except KeyError:
        return None
    if trial.state == TrialState.RUNNING:
        storage_of(study).set_trial_state_values(trial_id, state=TrialState.FAIL)
        trial = storage_of(study).get_trial(trial_id)
    if trial.state != TrialState.FAIL or not trial.user_attrs.get(QUEUED):
        return None
    before = len(study.get_trials(deepcopy=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)(study, trial)
    close_shadow_trial(study, trial)
    after = study.get_trials(deepcopy=False)
    return after[-1].number if len(after) > before else None


def first_heartbeat(study: optuna.Study, trial: optuna.Trial) -> None:
    """Record ``trial``'s first heartbeat now (Optuna's heartbeat thread does it a moment later, and a trial
    killed before its first heartbeat could never be found stale)."""
    record_heartbeat(study, trial)


def failed_elsewhere(study: optuna.Study, trial_id: int | None) -> bool:
    """True when ``trial_id`` was failed by another process (its heartbeat was judged stale) and so this
    process could not record its outcome; the re-queued copy runs elsewhere."""
    if trial_id is None:
        return False
    try:
        trial = storage_of(study).get_trial(trial_id)
    except KeyError:
        return False
    return trial.state == TrialState.FAIL and any(
        t.system_attrs.get("failed_trial") is not None and trial.number in t.system_attrs.get("retry_history", ())
        for t in study.get_trials(deepcopy=False))
