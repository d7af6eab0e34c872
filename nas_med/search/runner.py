"""Running a study: prepare (validate, load data, create or resume), baselines, then queued trials."""
from __future__ import annotations

import logging

import time
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from ..arch import ArchSpec
from ..data import load_dataset
from ..data.types import Dataset
from ..errors import UserError
from ..space import Space, load_space
from ..train import TrainingFailed
from .config import SearchConfig
from .objective import TrialObjective
from .pruning import shadow_study
from .storage import artifact_dir, open_storage
from .study import QUEUED_ATTR, create_or_resume, load_nas_study, stored_config, top_up_queue, waiting

log = logging.getLogger(__name__)
BASELINE_TRAINING = {"lr": 1e-3, "batch_size": 32, "weight_decay": 0.0}


class BudgetMet(RuntimeError):
    """A worker asked for a trial after the queue emptied; the surplus trial is closed, not run."""


@dataclass
class Session:
    """What one process needs to run trials of a study."""

    config: SearchConfig
    study: optuna.Study
    data: Dataset
    space: Space
    objective: TrialObjective


def _load_data(config: SearchConfig) -> Dataset:
    return load_dataset(config.dataset, data_root=config.data_root, size=config.size, channels=config.channels,
                        fraction=config.fraction, seed=config.seed)


def _session(config: SearchConfig, study: optuna.Study, data: Dataset, space: Space) -> Session:
    storage_url = config.storage or "sqlite:///studies/nas-med.db"
    shadow = None
    if config.pruner != "none":
        shadow = shadow_study(study.study_name, study._storage, config.pruner, config.epochs)
    objective = TrialObjective(config, data, space, shadow, artifact_dir(storage_url) if config.artifacts else None)
    return Session(config, study, data, space, objective)


def prepare(config: SearchConfig) -> Session:
    """Validate ``config`` and the space, load the data, create or resume the study. Nothing is written to the
    storage before every input has been checked."""
    config.validate()
    space = load_space(config.space)
    data = _load_data(config)
    if config.size is None:
        config.size = data.size
    storage = open_storage(config.storage)
    resolved = config.resolved(space.to_dict(), {"task": data.task, "classes": data.classes,
                                                 "counts": {k: len(v) for k, v in data.splits.items()},
                                                 "size": data.size, "channels": data.in_channels})
    study = create_or_resume(config, resolved, storage)
    return _session(config, study, data, space)


def attach(study_name: str, storage_url: str | None, device: str | None = None) -> Session:
    """A worker's session on an existing study: the configuration comes from the study itself."""
    study = load_nas_study(study_name, storage_url)
    config = SearchConfig.from_resolved(stored_config(study))
    config.storage = storage_url
    if device:
        config.device = device
    return _session(config, study, _load_data(config), load_space_from(stored_config(study)))


def load_space_from(resolved: dict) -> Space:
    from ..space import parse_space

    return parse_space(resolved["space_definition"], resolved.get("space", "space"))


def run_baselines(session: Session) -> None:
    """Add each requested reference network once, as a trial marked ``kind=baseline``."""
    if not session.config.baselines:
        return
    from ..arch.baselines import baseline_spec

    done = {t.user_attrs.get("baseline") for t in session.study.get_trials(deepcopy=False)
            if t.state == TrialState.COMPLETE}
    for name in session.config.baselines:
        if name in done:
            continue
        spec: ArchSpec = baseline_spec(name, session.data.in_channels, session.data.num_classes, session.data.size)
        trial = session.study.ask()
        trial.set_user_attr("kind", "baseline")
        trial.set_user_attr("baseline", name)
        try:
            values = session.objective.evaluate(trial, spec, BASELINE_TRAINING)
        except optuna.TrialPruned:
            session.study.tell(trial, state=TrialState.PRUNED)
        except (TrainingFailed, UserError):
            session.study.tell(trial, state=TrialState.FAIL)
        else:
            session.study.tell(trial, list(values))


def _queued_objective(session: Session):
    def objective(trial: optuna.Trial):
        if not trial.user_attrs.get(QUEUED_ATTR):
            trial.set_user_attr("stop_reason", "the study's trial budget was already met")
            raise BudgetMet("the study's trial budget was already met")
        return session.objective(trial)

    return objective


def run_queue(session: Session, timeout: float | None = None, callbacks=()) -> None:
    """Run queued trials until none wait (or ``timeout`` seconds pass). Failed trials are recorded, not raised."""
    deadline = None if timeout is None else time.monotonic() + timeout
    objective = _queued_objective(session)
    while waiting(session.study) > 0:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            break
        session.study.optimize(objective, n_trials=1, timeout=left, catch=(TrainingFailed, BudgetMet),
                               callbacks=list(callbacks), gc_after_trial=True, show_progress_bar=False)


def search(config: SearchConfig, callbacks=()) -> optuna.Study:
    """``nas-med search`` as a function: prepare, baselines, queue ``config.trials`` trials and run them."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    session = prepare(config)
    run_baselines(session)
    top_up_queue(session.study, config.trials)
    if config.workers > 1:
        from .workers import run_local_workers

        run_local_workers(session, config)
    else:
        run_queue(session, config.timeout, callbacks)
    return session.study


