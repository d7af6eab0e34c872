"""Fraction x input-size sweeps: how much data, and how big an image, does a dataset need?

A sweep ``S`` over fractions F and sizes Z is one ordinary nas-med study per point, named ``S:f<fraction>-s<size>``
(``S:f<fraction>`` when the dataset's own size is used), in one storage. Every point study carries two user attrs:
``sweep`` (the sweep's definition and list of points, as of its latest run) and ``sweep_point`` ({sweep, point,
fraction, size}); its tested results go to ``sweep_results`` ({architecture: entry}), so the table and figures can
be rebuilt from the storage alone (``sweep_rows``, ``sweep_section_html``).

Per point: the search is created or resumed through ``nas_med.search.runner`` with the point's fraction and size
and ``trials_per_point`` queued trials (re-running tops the queue up to the budget only; a point whose budget is
spent and whose results are stored is skipped); then the minimalist choice (``select.minimalist`` on the Pareto
front) and each requested baseline are retrained and tested with ``retrain.retrain_trial``. Extra workers join a
point like any study (``--workers``, or ``nas-med worker --study S:f0.01-s64``).

Input size as a searched dimension: the space field ``input_size`` is sampled (a trial's spec gets the sampled
size), but a study's data is prepared at one size, so a trial whose sampled size differs from the data's is pruned
with ``stop_reason`` "input size X differs from the data's Y px". Comparing sizes is what a sweep does, with one
fixed size per point; a sweep therefore refuses a space that searches ``input_size``.
"""
from __future__ import annotations

import base64
import csv
import html
import io
import json
import logging
import math
import re
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import optuna
from optuna.trial import FrozenTrial, TrialState

from .errors import UserError
from .search.config import SearchConfig, differences
from .search.study import CONFIG_ATTR, QUEUED_ATTR

__all__ = ["SweepConfig", "SweepPoint", "SweepResult", "parse_fractions", "parse_sizes", "run_sweep", "sweep_of",
           "sweep_rows", "sweep_section_html", "sweep_studies", "sweep_figures", "write_sweep"]

log = logging.getLogger(__name__)

SWEEP_ATTR = "sweep"
POINT_ATTR = "sweep_point"
RESULTS_ATTR = "sweep_results"
MINIMALIST = "minimalist"
MIN_SIZE, MAX_SIZE = 8, 1024
_NAME = re.compile(r"[A-Za-z0-9_.+-]{1,150}")
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)

Progress = Callable[["SweepPoint", int], AbstractContextManager]
"""``progress(point, trials)``: a context manager entered while a point's trials run; if it is callable it is
passed to Optuna as a trial callback (``cli.progress.SearchProgress`` is both)."""


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

    def sweep_name(self) -> str:
        """The given name, or ``<dataset>-sweep``."""
        if self.name:
            return self.name
        dataset = re.sub(r"[^A-Za-z0-9_.-]+", "-", self.dataset.replace("folder:", "folder-")).strip("-")
        return f"{dataset[:140]}-sweep"

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
        from .select import minimalist

        minimalist([], self.auc_tolerance, self.cam_floor)  # checks the rule's values
        for point in self.points():
            self.point_config(point).validate()
        return self


@dataclass
class SweepResult:
    """What a sweep run produced: its table rows and the files written."""

    name: str
    rows: list[dict]
    out_dir: Path
    files: list[Path] = field(default_factory=list)


# ---- running -----------------------------------------------------------------------------------------------------

def _check_space(space) -> None:
    sizes = [space.arch.get("input_size", [None])]
    sizes += [o["input_size"] for o in space.arch.get("by_block", {}).values() if "input_size" in o]
    if any(isinstance(s, dict) or any(v is not None for v in s) for s in sizes):
        raise UserError(f"search space '{space.name}' searches input_size, but a sweep fixes the input size per "
                        "point (--sizes); remove input_size from the space.")


def _preflight(config: SweepConfig, space, summaries: dict) -> None:
    """Refuse, before any point runs, a point study that exists with another configuration."""
    for point in config.points():
        summary = summaries.get(point.study_name(config.sweep_name()))
        if summary is None:
            continue
        stored = summary.user_attrs.get(CONFIG_ATTR)
        if stored is None:
            raise UserError(f"study '{summary.study_name}' exists but was not created by nas-med; "
                            "use another --sweep name.")
        new = config.point_config(point).resolved(space.to_dict(), {})
        diff = [d for d in differences(stored, new) if not (point.size is None and d.startswith("size:"))]
        if diff:
            raise UserError(f"sweep point '{summary.study_name}' already exists with another configuration "
                            f"({'; '.join(diff)}). Use another --sweep name or the stored settings.")


def _budget_left(study: optuna.Study, trials: int) -> tuple[int, int]:
    """(queued trials still to take, trials waiting now) against a budget of ``trials`` queued trials."""
    states = [t.state for t in study.get_trials(deepcopy=False) if t.user_attrs.get(QUEUED_ATTR)]
    taken = sum(s != TrialState.WAITING for s in states)
    return max(0, trials - taken), states.count(TrialState.WAITING)


def _missing_baselines(study: optuna.Study, names: Iterable[str]) -> list[str]:
    tried = {t.user_attrs.get("baseline") for t in study.get_trials(deepcopy=False, states=_FINISHED)}
    return [n for n in names if n not in tried]


def _tag(study: optuna.Study, config: SweepConfig, point: SweepPoint) -> None:
    name = config.sweep_name()
    study.set_user_attr(SWEEP_ATTR, {
        "name": name, "dataset": config.dataset, "fractions": list(config.fractions), "sizes": list(config.sizes),
        "points": [p.study_name(name) for p in config.points()], "trials_per_point": config.trials_per_point,
        "baselines": list(config.baselines), "seeds": config.seeds})
    study.set_user_attr(POINT_ATTR, {"sweep": name, "point": point.label, "fraction": point.fraction,
                                     "size": point.size})


def _search_point(config: SweepConfig, point: SweepPoint, study: optuna.Study | None,
                  progress: Progress | None) -> optuna.Study:
    """Create or resume the point's study with ``search.search`` and run what is left of its budget (only the
    missing baselines when the budget is spent); a finished point is returned untouched."""
    from .search.runner import prepare, run_baselines, search

    left, waiting = _budget_left(study, config.trials_per_point) if study is not None else (
        config.trials_per_point, 0)
    missing = _missing_baselines(study, config.baselines) if study is not None else list(config.baselines)
    if left or waiting:
        trials = max(left, waiting)  # search tops the queue up to this many waiting trials
        with (progress(point, trials) if progress else nullcontext()) as monitor:
            return search(config.point_config(point, trials), callbacks=[monitor] if callable(monitor) else [])
    if missing:
        session = prepare(config.point_config(point, 1))
        run_baselines(session)
        return session.study
    return study


def _to_test(study: optuna.Study, config: SweepConfig) -> dict[str, tuple[FrozenTrial, str]]:
    """{architecture: (trial, why)}: the minimalist choice and each requested baseline that completed."""
    from .select import completed, study_minimalist

    out: dict[str, tuple[FrozenTrial, str]] = {}
    choice = study_minimalist(study, config.auc_tolerance, config.cam_floor)
    if choice is not None:
        out[MINIMALIST] = (choice.trial, choice.reason)
    for name in config.baselines:
        runs = [t for t in completed(study, baselines=True) if t.user_attrs.get("baseline") == name]
        if runs:
            out[name] = (runs[-1], f"reference network {name}")
    return out


def _entry(arch: str, trial: FrozenTrial, why: str, report, config: SweepConfig) -> dict:
    from .retrain import json_safe
    from .select import value

    return json_safe({
        "architecture": arch, "trial": trial.number, "seeds": list(report.seeds), "why": why,
        "rule": {"auc_tolerance": config.auc_tolerance, "cam_floor": config.cam_floor} if arch == MINIMALIST else None,
        "summary": trial.user_attrs.get("summary", ""), "spec": trial.user_attrs.get("spec"),
        "params": int(value(trial, "params")), "flops": trial.user_attrs.get("flops"),
        "val_auc": value(trial, "auc"), "cam_quality": value(trial, "cam_quality"),
        "search_epoch_seconds": value(trial, "epoch_seconds"),
        "test": dict(report.summary), "per_seed": list(report.per_seed)})


def _test_point(study: optuna.Study, config: SweepConfig, point: SweepPoint, notify) -> None:
    """Retrain and test what ``_to_test`` names unless the stored result is for the same trial, seeds and rule."""
    from .retrain import load_study_data, retrain_trial, seed_list, trial_recipe

    results = dict(study.user_attrs.get(RESULTS_ATTR) or {})
    rule = {"auc_tolerance": config.auc_tolerance, "cam_floor": config.cam_floor}
    data = None
    for arch, (trial, why) in _to_test(study, config).items():
        seeds = seed_list(config.seeds, trial_recipe(trial)[1].seed)
        old = results.get(arch)
        if old and old.get("trial") == trial.number and old.get("seeds") == seeds and (
                arch != MINIMALIST or old.get("rule") == rule):
            continue
        data = data if data is not None else load_study_data(study)
        notify(f"{point.label}: retraining {arch} (trial {trial.number}) with seeds {seeds} and testing")
        report = retrain_trial(study, trial.number, seeds=seeds, data=data)
        results[arch] = _entry(arch, trial, why, report, config)
        study.set_user_attr(RESULTS_ATTR, results)  # after each one: an interrupted sweep keeps what it tested


def run_sweep(config: SweepConfig, progress: Progress | None = None,
              notify: Callable[[str], None] | None = None) -> SweepResult:
    """Run (or resume) every point of ``config``, test the choices, write the table and figures to the out dir."""
    from .search.storage import open_storage
    from .space import load_space

    notify = notify or log.info
    config.validate()
    space = load_space(config.space)
    _check_space(space)
    storage = open_storage(config.storage)
    summaries = {s.study_name: s for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    _preflight(config, space, summaries)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name, points, studies = config.sweep_name(), config.points(), []
    for i, point in enumerate(points, 1):
        study_name = point.study_name(name)
        study = optuna.load_study(study_name=study_name, storage=storage) if study_name in summaries else None
        notify(f"point {i} of {len(points)}: {study_name}")
        study = _search_point(config, point, study, progress)
        _tag(study, config, point)
        _test_point(study, config, point, notify)
        studies.append(study)
    rows = sweep_rows(studies)
    out = config.out_dir()
    return SweepResult(name, rows, out, write_sweep(name, rows, out))


# ---- reading a sweep back ----------------------------------------------------------------------------------------

def sweep_of(study: optuna.Study) -> str | None:
    """The name of the sweep ``study`` belongs to, or None."""
    return (study.user_attrs.get(POINT_ATTR) or {}).get("sweep")


def sweep_studies(name: str, storage: str | optuna.storages.BaseStorage | None = None) -> list[optuna.Study]:
    """Every point study of sweep ``name`` in ``storage``, by size then fraction; UserError if there is none."""
    from .search.storage import mask_url, open_storage

    store = storage if isinstance(storage, optuna.storages.BaseStorage) else open_storage(storage)
    found = []
    for s in optuna.get_all_study_summaries(store, include_best_trial=False):
        point = s.user_attrs.get(POINT_ATTR) or {}
        if point.get("sweep") == name:
            found.append(((point.get("size") or 0, point.get("fraction", 0)), s.study_name))
    if not found:
        where = mask_url(storage) if isinstance(storage, str) else "the storage"
        raise UserError(f"no study of sweep '{name}' in {where}.")
    return [optuna.load_study(study_name=n, storage=store) for _, n in sorted(found)]


def _stages(spec: dict | None) -> tuple[int | None, int | None, str]:
    """(stages, total blocks, 'stages x depth' label) of a spec dict; Nones for a torchvision spec."""
    stages = (spec or {}).get("stages") or []
    if not stages:
        return None, None, ""
    depths = [int(s["depth"]) for s in stages]
    label = f"{len(depths)}x{depths[0]}" if len(set(depths)) == 1 else "+".join(map(str, depths))
    return len(depths), sum(depths), label


def _stat(test: dict, metric: str) -> tuple[float | None, float | None, float | None]:
    s = (test or {}).get(metric) or {}
    return s.get("mean"), s.get("ci_low"), s.get("ci_high")


def sweep_rows(studies: Iterable[optuna.Study]) -> list[dict]:
    """One row per point and architecture (the minimalist choice, then each requested baseline), from storage."""
    rows = []
    for study in studies:
        point, cfg = study.user_attrs.get(POINT_ATTR) or {}, study.user_attrs.get(CONFIG_ATTR) or {}
        results = study.user_attrs.get(RESULTS_ATTR) or {}
        trials = study.get_trials(deepcopy=False)
        cands = [t for t in trials if t.user_attrs.get("kind") == "candidate"]
        base = {"sweep": point.get("sweep"), "study": study.study_name, "point": point.get("point"),
                "fraction": point.get("fraction", cfg.get("fraction")),
                "size": point.get("size") or cfg.get("size") or (cfg.get("dataset_info") or {}).get("size"),
                "train_images": ((cfg.get("dataset_info") or {}).get("counts") or {}).get("train"),
                "trials": len(cands), "completed": sum(t.state == TrialState.COMPLETE for t in cands)}
        for arch in [MINIMALIST, *cfg.get("baselines", [])]:
            r = results.get(arch)
            row = dict(base, architecture=arch)
            if r is None:
                row["summary"] = ("no completed candidate" if arch == MINIMALIST
                                  else _baseline_note(trials, arch))
                rows.append(row)
                continue
            stages, blocks, label = _stages(r.get("spec"))
            auc, auc_lo, auc_hi = _stat(r["test"], "auc")
            acc, acc_lo, acc_hi = _stat(r["test"], "accuracy")
            epoch = _stat(r["test"], "epoch_seconds")[0]
            row.update(trial=r["trial"], summary=r["summary"], params=r["params"], flops=r.get("flops"),
                       stages=stages, blocks=blocks, depth=label,
                       epoch_seconds=epoch if epoch is not None else r.get("search_epoch_seconds"),
                       test_auc=auc, test_auc_low=auc_lo, test_auc_high=auc_hi,
                       test_accuracy=acc, test_accuracy_low=acc_lo, test_accuracy_high=acc_hi,
                       test_sensitivity=_stat(r["test"], "sensitivity")[0],
                       test_specificity=_stat(r["test"], "specificity")[0],
                       cam_quality=r.get("cam_quality"), val_auc=r.get("val_auc"),
                       seeds=len(r.get("seeds", [])), why=r.get("why"))
            rows.append(row)
    return [{k: round(v, 6) if isinstance(v, float) and math.isfinite(v) else v for k, v in r.items()} for r in rows]


def _baseline_note(trials: list[FrozenTrial], name: str) -> str:
    runs = [t for t in trials if t.user_attrs.get("baseline") == name]
    if not runs:
        return "not run"
    last = runs[-1]
    return f"{last.state.name.lower()}: {last.user_attrs.get('stop_reason', 'no reason recorded')}"


# ---- table, figures, files ---------------------------------------------------------------------------------------

COLUMNS = ("sweep", "point", "fraction", "size", "train_images", "architecture", "trial", "summary", "stages",
           "blocks", "depth", "params", "flops", "epoch_seconds", "test_auc", "test_auc_low", "test_auc_high",
           "test_accuracy", "test_accuracy_low", "test_accuracy_high", "test_sensitivity", "test_specificity",
           "cam_quality", "val_auc", "seeds", "trials", "completed", "study", "why")


def _interval(row: dict, key: str) -> str:
    mean, lo, hi = row.get(key), row.get(f"{key}_low"), row.get(f"{key}_high")
    if mean is None:
        return "-"
    return f"{mean:.3f}" + ("" if lo is None or hi is None else f" [{lo:.3f}, {hi:.3f}]")


def display_rows(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """The table as header and text cells, for the console and the HTML report."""
    head = ["fraction", "size", "train", "architecture", "chosen architecture", "depth", "params", "epoch s",
            "test AUC [95% CI]", "test accuracy [95% CI]", "CAM quality", "candidates"]
    cells = []
    for r in rows:
        def fmt(key: str, spec: str) -> str:
            return "-" if r.get(key) is None else format(r[key], spec)

        chosen = r["architecture"] == MINIMALIST
        cells.append([f"{r['fraction']:g}", str(r.get("size") or "-"), fmt("train_images", "d"), r["architecture"],
                      (r.get("summary") or "-") if chosen or r.get("trial") is None else _baseline_line(r),
                      r.get("depth") or "-", fmt("params", ","), fmt("epoch_seconds", ".3f"),
                      _interval(r, "test_auc"), _interval(r, "test_accuracy"), fmt("cam_quality", "+.3f"),
                      f"{r['completed']}/{r['trials']}" if chosen else ""])
    return head, cells


def _baseline_line(row: dict) -> str:
    """A reference network's one-line description (its full spec summary stays in the CSV and JSON)."""
    from .arch.baselines import BASELINES

    entry = BASELINES.get(row["architecture"])
    return f"reference: {entry[1]}" if entry else row.get("summary") or "-"


def sweep_figures(rows: list[dict]) -> dict[str, bytes]:
    """PNG bytes: ``auc_vs_fraction.png`` (test AUC per fraction, log x, one line per architecture and size) and
    ``depth_vs_size.png`` (the minimalist choice's stages x depth per input size, one line per fraction)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    figures = {}
    tested = [r for r in rows if r.get("test_auc") is not None]
    sizes = sorted({r["size"] for r in tested if r.get("size")})
    archs = list(dict.fromkeys(r["architecture"] for r in tested))
    colors = {a: f"C{i}" for i, a in enumerate(archs)}
    markers = "osD^v<>p*h"
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    lines = [(a, j, s) for a in archs for j, s in enumerate(sizes or [None])]
    for k, (arch, j, size) in enumerate(lines):
        line = sorted((r for r in tested if r["architecture"] == arch and (size is None or r["size"] == size)),
                      key=lambda r: r["fraction"])
        if line:
            dodge = 1.025 ** (k - (len(lines) - 1) / 2)  # side by side, so intervals do not hide each other
            x = [r["fraction"] * dodge for r in line]
            y = [r["test_auc"] for r in line]
            err = [[y - _or(r.get("test_auc_low"), y) for r, y in zip(line, y)],
                   [_or(r.get("test_auc_high"), y) - y for r, y in zip(line, y)]]
            label = arch + ("" if len(sizes) < 2 else f" ({size} px)")
            ax.errorbar(x, y, yerr=[[max(0.0, e) for e in side] for side in err], color=colors[arch],
                        marker=markers[j % len(markers)], capsize=3, label=label,
                        linestyle="-" if arch == MINIMALIST else "--")
    fractions = sorted({r["fraction"] for r in rows})
    ax.set_xscale("log")
    if fractions:
        ax.set_xticks(fractions, [f"{f:g}" for f in fractions])
        ax.minorticks_off()
    figures["auc_vs_fraction.png"] = _finish(fig, ax, "fraction of the training split (log scale)",
                                             "test AUC (mean over seeds, 95% CI)",
                                             "Test AUC against training-data fraction", legend=bool(archs))

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    chosen = [r for r in rows if r["architecture"] == MINIMALIST and r.get("blocks") is not None]
    fractions_chosen = sorted({r["fraction"] for r in chosen})
    sizes_all = sorted({r["size"] for r in chosen if r.get("size")}) or [1]
    pad = 0.1 * (sizes_all[-1] - sizes_all[0]) if len(sizes_all) > 1 else 0.5 * sizes_all[0]
    width = sizes_all[-1] - sizes_all[0] + 2 * pad
    labelled: set = set()
    for i, fraction in enumerate(fractions_chosen):
        line = sorted((r for r in chosen if r["fraction"] == fraction), key=lambda r: r["size"] or 0)
        shift = 0.02 * width * (i - (len(fractions_chosen) - 1) / 2)  # side by side when depths coincide
        x, y = [r["size"] + shift for r in line], [r["blocks"] for r in line]
        ax.plot(x, y, marker=markers[i % len(markers)], label=f"fraction {fraction:g}")
        for xi, r in zip(x, line):
            if (r["size"], r["depth"]) not in labelled:  # one "stages x depth" label per size and shape
                labelled.add((r["size"], r["depth"]))
                ax.annotate(r["depth"], (xi, r["blocks"]), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.set_xlim(sizes_all[0] - pad, sizes_all[-1] + pad)
    ax.set_xticks(sizes_all, [str(s) for s in sizes_all])
    ax.set_ylim(0, max([r["blocks"] for r in chosen] or [1]) + 1)
    ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    figures["depth_vs_size.png"] = _finish(fig, ax, "input size (px)",
                                           "blocks of the minimalist choice (stages x depth)",
                                           "Chosen depth against input size", legend=bool(chosen))
    return figures


def _finish(fig, ax, xlabel: str, ylabel: str, title: str, legend: bool) -> bytes:
    """Label, grid and legend of one sweep figure, then its PNG bytes."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if legend:
        ax.legend(fontsize=8)
    return _png(fig)


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def write_sweep(name: str, rows: list[dict], out: Path) -> list[Path]:
    """Write ``sweep.csv``, ``sweep.json`` and the two figures into ``out``; returns the paths."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create --out folder '{out}': {exc.strerror}.") from None
    files = []
    path = out / "sweep.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows([{k: ("" if r.get(k) is None else r.get(k)) for k in COLUMNS} for r in rows])
    files.append(path)
    path = out / "sweep.json"
    from .retrain import json_safe

    path.write_text(json.dumps(json_safe({"sweep": name, "rows": rows}), indent=2, allow_nan=False))
    files.append(path)
    for fname, png in sweep_figures(rows).items():
        (out / fname).write_bytes(png)
        files.append(out / fname)
    return files


def sweep_section_html(sweep_name: str, storage: str | optuna.storages.BaseStorage | None = None) -> str:
    """An HTML ``<section>`` for the report: the sweep table and both figures (base64 PNG), from storage only."""
    rows = sweep_rows(sweep_studies(sweep_name, storage))
    head, cells = display_rows(rows)
    esc = html.escape
    table = ("<table class='sweep'><thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr></thead><tbody>"
             + "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in cells)
             + "</tbody></table>")
    images = "".join(f"<figure><img alt='{esc(n)}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
                     f"<figcaption>{esc(n)}</figcaption></figure>" for n, png in sweep_figures(rows).items())
    return (f"<section class='sweep'><h2>Sweep {esc(sweep_name)}: data fraction and input size</h2>"
            f"<p>{len({r['study'] for r in rows})} point studies; per point the minimalist choice (and any "
            "baseline) retrained and tested; intervals are 95% bootstrap CIs.</p>" + table + images + "</section>")
