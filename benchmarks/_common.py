"""Shared helpers of the benchmark scripts: paths, argument parsing, machine line, searches, the RESULT line.

Not a benchmark itself (the leading underscore keeps it out of ``tests/test_benchmarks_quick.py``).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Iterator

# OpenMP spin-waiting makes torch many times slower on a small CPU shared with other processes; set before torch
# loads (the scripts import this module first)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

FIXED_SPACE = """\
name: fixed
description: One architecture (3 plain stages 16-32-64, batch norm, GAP + linear), for timing benchmarks.
arch:
  block: [simple]
  stages: 3
  depth: [1]
  base_width: [16]
  width_growth: [2.0]
  kernel: [3]
  norm: [batch]
  act: [relu]
  stem: [none]
  head: [gap_linear]
  dropout: [0.0]
train:
  lr: [0.003]
  batch_size: [32]
"""


def shared_data(name: str = "breastmnist") -> Path:
    """``../shared/data/<name>`` beside the repository, or exit with a clear message when it is missing."""
    path = SHARED / "data" / name
    if not path.is_dir():
        sys.exit(f"error: this benchmark reads real data from {path}, which does not exist. Put the MedMNIST "
                 f"files there (see {SHARED / 'data'}/{name}/README.md in the project's shared folder) and re-run.")
    return path


def parser(doc: str) -> argparse.ArgumentParser:
    """argparse with the options every benchmark has: --quick, --threads, --seed."""
    ap = argparse.ArgumentParser(description=doc.strip().split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n\n".join(doc.strip().split("\n\n")[1:]))
    ap.add_argument("--quick", action="store_true", help="a small run that finishes in under ~60 s (CI smoke test)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: on a shared 2-core machine 2 threads are far noisier)")
    ap.add_argument("--seed", type=int, default=0, help="seed of data, sampler and training")
    return ap


def add_skip_gc(ap: argparse.ArgumentParser) -> None:
    """--skip-gc: the what-if diagnostic of the timing benchmarks."""
    ap.add_argument("--skip-gc", action="store_true",
                    help="what-if diagnostic: make gc.collect() a no-op, to show what the full garbage collections "
                         "run around every trial cost")


def apply_skip_gc(args: argparse.Namespace) -> None:
    if getattr(args, "skip_gc", False):
        import gc

        gc.collect = lambda generation=2: 0
        print("what-if: gc.collect() is a no-op in this run")


def setup(args: argparse.Namespace) -> None:
    """Threads, quiet libraries, and one line describing the machine."""
    import optuna
    import torch

    torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore")
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__} with {args.threads} thread(s), "
          f"optuna {optuna.__version__}, python {platform.python_version()}, "
          f"GPU {'yes' if torch.cuda.is_available() else 'no'}; {load()}", flush=True)


def load() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:  # pragma: no cover
        return "load average unknown"
    return f"load average {one:.1f} / {five:.1f} / {fifteen:.1f} (1/5/15 min)"


def result(figures: dict[str, float], goal: str, started: float) -> None:
    """Print the closing lines: elapsed time and load, then ``RESULT k=v ... (goal ...)`` last."""
    print(f"elapsed {time.perf_counter() - started:.0f} s; {load()}")
    text = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items())
    print(f"RESULT {text} ({goal})", flush=True)


@contextlib.contextmanager
def temp_storage() -> Iterator[str]:
    """A sqlite URL in a fresh temporary folder (artifacts beside it), removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="nas-med-bench-") as tmp:
        yield f"sqlite:///{tmp}/nas-med.db"


def fixed_space(folder: str | Path) -> str:
    """Write the one-architecture space into ``folder`` and return its path."""
    path = Path(folder) / "fixed.yaml"
    path.write_text(FIXED_SPACE)
    return str(path)


def epochs_spent(study) -> int:
    """Training epochs run by all trials of ``study`` (completed, pruned and failed), from ``history``."""
    return sum(len(t.user_attrs.get("history") or []) for t in study.get_trials(deepcopy=False))


def median(values) -> float:
    return float(statistics.median(values))


def trial_seconds(trial) -> float:
    """Wall time of one trial as the storage recorded it (start to completion)."""
    return (trial.datetime_complete - trial.datetime_start).total_seconds()
