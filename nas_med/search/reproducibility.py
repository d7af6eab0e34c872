"""What a study's numbers depend on: fixed when the study is created, stored on it, checked when it resumes or a
worker joins.

Training is deterministic on one machine for a fixed number of torch threads; a different thread count changes
float sums, a different CPU or GPU changes kernels. So the study fixes the threads every trial trains with, and
records versions, device class and precision: a worker or resume whose own record differs is warned, by name.
"""
from __future__ import annotations

import contextlib
import logging
import os
import platform
from dataclasses import asdict, dataclass, fields
from typing import Iterator

from .config import SearchConfig

log = logging.getLogger(__name__)

# settings fixed when a study is created: a resume or a worker uses the stored value
FIXED = ("epoch_time", "threads", "trial_batch")


def cpu_cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what the platform says."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def device_class(device) -> str:
    """The device in words, as far as it decides the numbers: the GPU's name, or the CPU's name and bf16 units."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    if device.type == "cpu":
        from ..precision import cpu_bf16_flags

        flags = cpu_bf16_flags()
        return f"cpu: {cpu_name()}" + (f" ({', '.join(sorted(flags))})" if flags else "")
    return device.type


THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def thread_env() -> str:
    """The thread variables of this process's environment, ``NAME=value`` joined (empty when none is set)."""
    return ", ".join(f"{k}={os.environ[k]}" for k in THREAD_ENV if os.environ.get(k))


@dataclass(frozen=True)
class Record:
    """The reproducibility record of a study (or of the process about to run its trials)."""

    nas_med: str
    torch: str
    optuna: str
    device: str
    precision: str
    threads: int
    epoch_time: str   # the cost model's name, or "measured"
    trial_batch: int
    thread_env: str = ""  # OMP_NUM_THREADS / MKL_NUM_THREADS as set when the process started (MKL sums change)

    @classmethod
    def current(cls, config: SearchConfig, stored: dict) -> Record:
        """This process's record for running trials of ``config`` (threads and device as they will be used) in a
        study whose resolved configuration is ``stored``."""
        import optuna
        import torch

        from .._version import __version__
        from ..precision import resolve_precision
        from ..train import pick_device
        from .config import stored_cost_model

        device = pick_device(config.device)
        cost_model = stored_cost_model(stored)
        epoch_time = cost_model.name if cost_model else "measured"
        return cls(nas_med=__version__, torch=torch.__version__, optuna=optuna.__version__,
                   device=device_class(device), precision=resolve_precision(config.precision, device).name,
                   threads=int(config.threads or torch.get_num_threads()), epoch_time=epoch_time,
                   trial_batch=int(config.trial_batch), thread_env=thread_env())

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Record:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def describe(self) -> str:
        """One line for people: what the numbers of this study depend on."""
        batch = f"trials proposed in batches of {self.trial_batch}" if self.trial_batch else \
            "each trial sampled as it starts (not repeatable with several workers)"
        return (f"nas-med {self.nas_med}, torch {self.torch}, optuna {self.optuna}; {self.device}, {self.precision}, "
                f"{self.threads} thread(s) per trial{f' ({self.thread_env})' if self.thread_env else ''}; "
                f"epoch_seconds: {self.epoch_time}; {batch}")


def differences(stored: Record, current: Record) -> list[str]:
    """``name: stored X, here Y`` for every field that differs."""
    a, b = stored.to_dict(), current.to_dict()
    return [f"{key}: study {a[key]!r}, here {b[key]!r}" for key in a if a[key] != b.get(key)]


def adopt_stored(config: SearchConfig, stored: dict) -> None:
    """Set ``config``'s fixed settings (``FIXED``) to the study's stored ones: they were fixed at its creation."""
    kept = SearchConfig.from_resolved(stored)
    for key in FIXED:
        setattr(config, key, getattr(kept, key))


@contextlib.contextmanager
def study_threads(config: SearchConfig) -> Iterator[None]:
    """Train within the block with the study's threads (studies from before that setting: as they are) and, on
    CUDA, cuDNN's deterministic convolution algorithms (no benchmarking, which picks by timing); the process's
    own settings come back afterwards. Still not deterministic on CUDA: kernels that accumulate with atomics,
    among them the backward pass of adaptive average pooling (the GAP heads), so a GPU study may differ in the
    last digits between runs; CPU studies repeat exactly."""
    import torch

    before = torch.get_num_threads()
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    if config.threads and config.threads != before:
        torch.set_num_threads(int(config.threads))
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def check(stored: dict | None, current: Record, study_name: str) -> list[str]:
    """Warn, naming each difference, when this process would not reproduce the study's numbers."""
    if not stored:
        return []
    diff = differences(Record.from_dict(stored), current)
    if diff:
        log.warning("this process differs from the one that created study '%s' (%s): its trials may not repeat "
                    "the study's numbers exactly", study_name, "; ".join(diff))
    return diff


def study_note(study) -> str | None:
    """What ``epoch_seconds`` means in ``study`` and what its numbers depend on, for people (None: a study from
    before records were kept)."""
    from .config import stored_cost_model
    from .records import REPRODUCIBILITY, stored_config

    stored = study.user_attrs.get(REPRODUCIBILITY)
    if not stored:
        return None
    model = stored_cost_model(stored_config(study))
    seconds = (f"epoch s: the cost model '{model.name}' (seconds on its reference, {model.reference}); measured s: "
               "the trial's own machine" if model else "epoch s: measured on each trial's machine")
    return f"{seconds}. Reproducibility: {Record.from_dict(stored).describe()}."
