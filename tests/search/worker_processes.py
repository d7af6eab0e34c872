"""Helpers for tests that run ``nas-med`` workers as real processes (shared by test_workers and test_postgres)."""
from __future__ import annotations

import os
import subprocess
import sys

import optuna
from optuna.trial import TrialState

from nas_med.search.records import QUEUED

ENTRY = "from nas_med.cli.main import main; main()"


def nas_med(*args: str, env: dict | None = None, **popen) -> subprocess.Popen:
    """``nas-med ARGS`` in a fresh interpreter (one torch thread: the test machine has 2 busy cores)."""
    full_env = dict(os.environ, OMP_NUM_THREADS="1", **(env or {}))
    return subprocess.Popen([sys.executable, "-c", ENTRY, *args], env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **popen)


def queued_finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The study's budgeted (queued) trials that completed or were pruned."""
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
            if t.user_attrs.get(QUEUED)]


def with_epochs(args: list[str], epochs: int) -> list[str]:
    """``args`` with ``--epochs`` set to ``epochs``: long enough trials to be caught mid-training."""
    at = args.index("--epochs")
    return [*args[:at], *args[at + 2:], "--epochs", str(epochs)]
