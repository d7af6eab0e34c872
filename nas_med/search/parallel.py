"""How a search uses the machine: local worker processes and torch threads per trial.

On a CPU a candidate at 28-64 px is too small for intra-op threads (``nas_med.threads``), while trials in
separate processes share nothing but the storage. So, by default, such images train single-threaded, one trial per
core; larger images keep today's rule (every core's threads for one trial at a time). The rule reads
only the image size and the machine's cores, never a timing, so the same command on the same machine fixes the
same threads (the threads are stored with the study: they change float sums, workers do not). Workers beyond a
trial batch would only wait for the batch to finish, so they are capped at ``--trial-batch``. On CUDA: one worker
per listed GPU (``--gpus``), else one, as before. ``--workers`` and ``--threads`` given by the user win; a resumed
study keeps its stored threads. The figures behind the rule are in benchmarks/README.md (``throughput.py``).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

from ..threads import single_threaded
from .config import SearchConfig
from .reproducibility import cpu_cores


@dataclass(frozen=True)
class Parallelism:
    """Local workers and torch threads per trial of one search, and why."""

    workers: int
    threads: int
    reason: str

    def line(self) -> str:
        """The start line's words: what was chosen and why."""
        workers = f"{self.workers} worker{'s' if self.workers != 1 else ''}"
        return f"parallel: {workers} x {self.threads} thread{'s' if self.threads != 1 else ''} per trial ({self.reason})"


def default_threads(size: int, device_type: str) -> tuple[int, str]:
    """Threads per trial of a new study whose user gave none, and the reason in words."""
    import torch

    if single_threaded(size, device_type):
        return 1, (f"{size} px images are too small to use several threads: one thread per trial, trials in "
                   f"parallel")
    return torch.get_num_threads(), (f"{size} px images use this process's {torch.get_num_threads()} threads"
                                     if device_type == "cpu" else f"on {device_type} one trial per device")


def default_workers(threads: int, device_type: str, trial_batch: int, gpus: tuple = (),
                    cores: int | None = None) -> int:
    """Local workers when the user gave none: the GPUs listed (else one) on a GPU; on the CPU its cores divided
    by the threads per trial, at most a trial batch (more would wait for the batch to finish)."""
    if gpus:
        return len(gpus)
    if device_type != "cpu":
        return 1
    workers = max(1, (cores or cpu_cores()) // max(1, threads))
    return min(workers, trial_batch) if trial_batch > 0 else workers


def choose(config: SearchConfig, size: int, device_type: str, stored_threads: int | None = None,
           cores: int | None = None) -> Parallelism:
    """Workers and threads per trial for ``config`` (``None`` fields are chosen here): threads as given, else as
    the study stored them (a resume), else by ``default_threads``; workers as given, else ``default_workers``."""
    cores = cores or cpu_cores()
    gpus = tuple(config.gpus)
    if config.threads is not None:
        threads, why = config.threads, f"--threads {config.threads}"
    elif stored_threads is not None:
        threads, why = stored_threads, f"the study's stored {stored_threads} thread(s) per trial"
    else:
        threads, why = default_threads(size, device_type)
    if config.workers is not None:
        return Parallelism(max(config.workers, len(gpus)), threads, f"--workers {config.workers}; {why}")
    workers = min(default_workers(threads, device_type, config.trial_batch, gpus, cores),
                  max(1, config.trials, len(gpus)))
    where = (f"one per GPU ({len(gpus)})" if gpus else f"{cores} cores" if device_type == "cpu" else device_type)
    cap = (f", at most a trial batch of {config.trial_batch}" if device_type == "cpu" and config.trial_batch
           and cores // max(1, threads) > config.trial_batch else "")
    return Parallelism(workers, threads, f"{why}; {where}{cap}")


def effective_parallel(workers: int, trial_batch: int) -> float:
    """Trials that run at once on average: batches of ``trial_batch`` trials run in ceil(batch / workers)
    rounds (a batch waits for the one before it)."""
    workers = max(1, workers)
    if trial_batch <= 0:
        return float(workers)
    return trial_batch / math.ceil(trial_batch / min(workers, trial_batch))


def process_age() -> float:
    """Seconds since this process started (its interpreter, imports and data loading: about what each local worker
    spends before its first trial); 0 where ``/proc`` does not say."""
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            started = float(f.read().rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
        with open("/proc/uptime", encoding="ascii") as f:
            return max(0.0, float(f.read().split()[0]) - started)
    except (OSError, ValueError, IndexError):
        return 0.0
