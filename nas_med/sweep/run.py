"""Running a sweep: per point, search (or resume) the point's study, then retrain and test its choices."""
from __future__ import annotations

import logging
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..errors import UserError
from ..search import records
from ..search.config import differences
from .config import MINIMALIST, SweepConfig, SweepPoint
from .rows import FINISHED, sweep_rows

__all__ = ["Progress", "SweepResult", "run_sweep"]

log = logging.getLogger(__name__)

Progress = Callable[[SweepPoint, int], AbstractContextManager]
"""``progress(point, trials)``: a context manager entered while a point's trials run; if it is callable it is
passed to Optuna as a trial callback (``cli.progress.SearchProgress`` is both)."""


@dataclass
class SweepResult:
    """What a sweep run produced: its table rows, and the folder its files go to (``report.sweep.write_sweep``)."""

    name: str
    rows: list[dict]
    out_dir: Path
    files: list[Path] = field(default_factory=list)


def _check_space(space) -> None:
    sizes = [space.arch.get("input_size", [None])]
    sizes += [o["input_size"] for o in space.arch.get("by_block", {}).values() if "input_size" in o]
    if any(isinstance(s, dict) or any(v is not None for v in s) for s in sizes):
        raise UserError(f"search space '{space.name}' searches input_size, but a sweep fixes the input size per "
                        "point (--sizes); remove input_size from the space.")


def _check_data(config: SweepConfig) -> None:
    """Load the data at the smallest fraction (the one that keeps fewest images of a class) so that a fraction
    too small for the data is refused before any storage or study is written."""
    from ..data import load_dataset

    load_dataset(config.dataset, data_root=config.data_root, size=config.sizes[0], channels=config.channels,
                 fraction=min(config.fractions), seed=config.seed)


def _preflight(config: SweepConfig, space, summaries: dict) -> None:
    """Refuse, before any point runs, a point study that exists with another configuration."""
    for point in config.points():
        summary = summaries.get(point.study_name(config.sweep_name()))
        if summary is None:
            continue
        stored = summary.user_attrs.get(records.CONFIG)
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
    states = [t.state for t in study.get_trials(deepcopy=False) if t.user_attrs.get(records.QUEUED)]
    taken = sum(s != TrialState.WAITING for s in states)
    return max(0, trials - taken), states.count(TrialState.WAITING)


def _missing_baselines(study: optuna.Study, names: Iterable[str]) -> list[str]:
    tried = {records.baseline_name(t) for t in study.get_trials(deepcopy=False, states=FINISHED)}
    return [n for n in names if n not in tried]


def _tag(study: optuna.Study, config: SweepConfig, point: SweepPoint) -> None:
    name = config.sweep_name()
    study.set_user_attr(records.SWEEP, {
        "name": name, "dataset": config.dataset, "fractions": list(config.fractions), "sizes": list(config.sizes),
        "points": [p.study_name(name) for p in config.points()], "trials_per_point": config.trials_per_point,
        "baselines": list(config.baselines), "seeds": config.seeds})
    study.set_user_attr(records.SWEEP_POINT, {"sweep": name, "point": point.label, "fraction": point.fraction,
                                     "size": point.size})


def _search_point(config: SweepConfig, point: SweepPoint, study: optuna.Study | None,
                  progress: Progress | None) -> optuna.Study:
    """Create or resume the point's study with ``search.search`` and run what is left of its budget (only the
    missing baselines when the budget is spent); a finished point is returned untouched."""
    from ..search.runner import prepare, run_baselines, search

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
    from ..select import completed, study_minimalist

    out: dict[str, tuple[FrozenTrial, str]] = {}
    choice = study_minimalist(study, config.rule)
    if choice is not None:
        out[MINIMALIST] = (choice.trial, choice.reason)
    for name in config.baselines:
        runs = [t for t in completed(study, baselines=True) if records.baseline_name(t) == name]
        if runs:
            out[name] = (runs[-1], f"reference network {name}")
    return out


def _entry(arch: str, trial: FrozenTrial, why: str, report, config: SweepConfig) -> dict:
    from ..search.records import json_safe
    from ..select import value

    return json_safe({
        "architecture": arch, "trial": trial.number, "seeds": list(report.seeds), "why": why,
        "rule": {"auc_tolerance": config.auc_tolerance, "cam_floor": config.cam_floor} if arch == MINIMALIST else None,
        "summary": records.summary(trial), "spec": trial.user_attrs.get(records.SPEC),
        "params": int(value(trial, "params")), "flops": records.flops(trial),
        "val_auc": value(trial, "auc"), "cam_quality": value(trial, "cam_quality"),
        "search_epoch_seconds": value(trial, "epoch_seconds"),
        "test": dict(report.summary), "per_seed": list(report.per_seed)})


def _test_point(study: optuna.Study, config: SweepConfig, point: SweepPoint, notify) -> None:
    """Retrain and test what ``_to_test`` names unless the stored result is for the same trial, seeds and rule."""
    from ..final import FinalPlan, study_recipe, train_final
    from ..search.records import load_study_data, seed_list, trial_recipe

    results = dict(study.user_attrs.get(records.SWEEP_RESULTS) or {})
    rule = {"auc_tolerance": config.auc_tolerance, "cam_floor": config.cam_floor}
    data, teachers = None, {}  # a distilling recipe trains the study's teacher once
    for arch, (trial, why) in _to_test(study, config).items():
        seeds = seed_list(config.seeds, trial_recipe(trial)[1].seed)
        old = results.get(arch)
        if old and old.get("trial") == trial.number and old.get("seeds") == seeds and (
                arch != MINIMALIST or old.get("rule") == rule):
            continue
        data = data if data is not None else load_study_data(study)
        notify(f"{point.label}: retraining {arch} (trial {trial.number}) with seeds {seeds} and testing")
        report = train_final(study, trial, FinalPlan(study_recipe(study, folds=1), seeds), data, teachers)
        results[arch] = _entry(arch, trial, why, report, config)
        study.set_user_attr(records.SWEEP_RESULTS, results)  # after each one: an interrupted sweep keeps what it tested


def run_sweep(config: SweepConfig, progress: Progress | None = None,
              notify: Callable[[str], None] | None = None) -> SweepResult:
    """Run (or resume) every point of ``config`` and test the choices; the rows are read back from storage."""
    from ..search.storage import open_storage
    from ..space import load_space

    notify = notify or log.info
    config.validate()
    space = load_space(config.space)
    _check_space(space)
    _check_data(config)
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
    return SweepResult(name, sweep_rows(studies), config.out_dir())


