"""A sweep's definition: the fraction x size grid, the per-point search budget and the test protocol."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..search.config import SearchConfig
from ..search.names import slug

__all__ = ["MAX_SIZE", "MINIMALIST", "MIN_SIZE", "SweepConfig", "SweepPoint", "parse_fractions", "parse_sizes"]

MINIMALIST = "minimalist"
MIN_SIZE, MAX_SIZE = 8, 1024
_NAME = re.compile(r"[A-Za-z0-9_.+-]{1,150}")


def parse_fractions(text: str) -> tuple[float, ...]:
    """``"0.01,0.1,1"`` -> (0.01, 0.1, 1.0), sorted and de-duplicated; each in (0, 1]."""
    items = [s.strip() for s in str(text).split(",") if s.strip()]
    if not items:
        raise UserError(f"--fractions needs at least one fraction in (0, 1], got '{text}'.")
    out = []
    for item in items:
        try:
            value = float(item)
        except ValueError:
            raise UserError(f"--fractions must be numbers separated by commas, got '{item}' in '{text}'.") from None
        if not (math.isfinite(value) and 0 < value <= 1):
            raise UserError(f"--fractions: every fraction must be in (0, 1], got {item}.")
        out.append(value)
    return tuple(sorted(set(out)))


def parse_sizes(text: str | None) -> tuple[int | None, ...]:
    """``"64,128"`` -> (64, 128), sorted and de-duplicated; None or "" -> (None,): the dataset's own size."""
    if text is None or not str(text).strip():
        return (None,)
    out = []
    for item in (s.strip() for s in str(text).split(",")):
        if not re.fullmatch(r"\d+", item):
            raise UserError(f"--sizes must be whole pixel counts separated by commas, got '{item}' in '{text}'.")
        if not MIN_SIZE <= int(item) <= MAX_SIZE:
            raise UserError(f"--sizes: every size must be between {MIN_SIZE} and {MAX_SIZE} pixels, got {item}.")
        out.append(int(item))
    return tuple(sorted(set(out)))


@dataclass(frozen=True)
class SweepPoint:
    """One (fraction, size) of a sweep; ``size`` None means the dataset's own size."""

    fraction: float
    size: int | None

    @property
    def label(self) -> str:
        return f"f{self.fraction:g}" + ("" if self.size is None else f"-s{self.size}")

    def study_name(self, sweep: str) -> str:
        return f"{sweep}:{self.label}"


@dataclass
class SweepConfig:
    """The arguments of ``nas-med sweep``: the grid, the per-point search budget and the test protocol."""

    fractions: tuple[float, ...]
    sizes: tuple[int | None, ...] = (None,)
    dataset: str = "synthetic"
    data_root: str | None = None
    channels: int | None = None
    name: str | None = None
    trials_per_point: int = 12
    epochs: int = SearchConfig.epochs
    space: str = "default"
    storage: str | None = None
    sampler: str = "tpe"
    pruner: str = "median"
    seed: int = 0
    device: str = "auto"
    baselines: tuple[str, ...] = ()
    seeds: int = 3
    workers: int = 1
    cam_images: int = SearchConfig.cam_images
    cam_method: str = "gradcam"
    class_weighting: bool = False
    auc_tolerance: float = 0.01
    cam_floor: float | None = 0.0
    quiet: bool = False
    out: str | None = None

    @property
    def rule(self):
        """The minimalist rule of the sweep's choices (``select.Rule``; UserError for bad values)."""
        from ..select import Rule

        return Rule(self.auc_tolerance, self.cam_floor)

    def sweep_name(self) -> str:
        """The given name, or ``<dataset>-sweep``."""
        if self.name:
            return self.name
        return f"{slug(self.dataset)}-sweep"

    def points(self) -> list[SweepPoint]:
        """Smallest fraction first (a fraction too small for the data then fails before anything is written)."""
        return [SweepPoint(f, s) for f in self.fractions for s in self.sizes]

    def out_dir(self) -> Path:
        return Path(self.out) if self.out else Path("studies") / "sweeps" / self.sweep_name()

    def point_config(self, point: SweepPoint, trials: int | None = None) -> SearchConfig:
        """The ``SearchConfig`` of one point's study (``trials``: queued trials to have waiting; default the
        per-point budget)."""
        return SearchConfig(dataset=self.dataset, data_root=self.data_root, fraction=point.fraction, size=point.size,
                            channels=self.channels, space=self.space,
                            trials=self.trials_per_point if trials is None else trials,
                            study=point.study_name(self.sweep_name()), storage=self.storage, sampler=self.sampler,
                            pruner=self.pruner, seed=self.seed, device=self.device, epochs=self.epochs,
                            baselines=tuple(self.baselines), cam_images=self.cam_images, cam_method=self.cam_method,
                            class_weighting=self.class_weighting, workers=self.workers, quiet=self.quiet)

    def validate(self) -> SweepConfig:
        """Check every value before anything is written; raises UserError naming the bad value."""
        self.fractions = parse_fractions(",".join(str(f) for f in self.fractions)) if self.fractions else ()
        if not self.fractions:
            raise UserError("--fractions needs at least one fraction in (0, 1], got none.")
        if not self.sizes:
            raise UserError("--sizes needs at least one size, got none.")
        if any(s is not None for s in self.sizes):
            self.sizes = parse_sizes(",".join(str(s) for s in self.sizes))
        if self.name is not None and not _NAME.fullmatch(self.name):
            raise UserError(f"--sweep '{self.name}' may hold only letters, digits and _.+- characters (at most 150).")
        if self.trials_per_point < 1:
            raise UserError(f"--trials-per-point must be at least 1, got {self.trials_per_point}.")
        if self.seeds < 1:
            raise UserError(f"--seeds must be at least 1, got {self.seeds}.")
        _ = self.rule  # checks the rule's values
        for point in self.points():
            self.point_config(point).validate()
        return self
