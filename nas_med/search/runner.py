"""Running a study: prepare (validate, load data, create or resume), baselines, then queued trials."""
from __future__ import annotations

import gc
import logging
import os
import random
import socket
import time
from dataclasses import dataclass
from typing import Callable

import optuna
import torch
from optuna.trial import TrialState

from ..arch import ArchSpec
from ..data import load_dataset
from ..data.fingerprint import data_fingerprint, require_same_data
from ..data.types import Dataset
from ..errors import UserError
from ..space import Space, load_space
from ..train import TrainingFailed, pick_device
from . import interrupts, records, reproducibility
from ._optuna_private import OPTIMIZE_LOGGER, storage_of, trial_id
from .batches import GiveBack, give_back, wait_for_earlier_batches
from .config import SearchConfig, stored_cost_model
from .objective import TrialObjective
from .parallel import Parallelism, choose
from .pruning import shadow_study
from .records import stored_config
from .storage import DEFAULT_STORAGE, artifact_dir, open_storage
from .study import create_or_resume, load_nas_study, top_up_queue, waiting

log = logging.getLogger(__name__)
BASELINE_TRAINING = {"lr": 1e-3, "batch_size": 32, "weight_decay": 0.0}
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"  # recorded on each trial as user attr ``worker``


class BudgetMet(RuntimeError):
    """A worker asked for a trial after the queue emptied; the surplus trial is closed, not run."""


class _OneLineFailures(logging.Filter):
    """Optuna logs a failed trial with its traceback; a candidate that cannot train is expected (its reason
    is in the trial's user attrs), so keep the line and drop the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], (TrainingFailed, BudgetMet, GiveBack, KeyboardInterrupt)):
            record.exc_info = None
        return True


logging.getLogger(OPTIMIZE_LOGGER).addFilter(_OneLineFailures())


@dataclass
class Session:
    """What one process needs to run trials of a study."""

    config: SearchConfig
    study: optuna.Study
    data: Dataset
    space: Space
    objective: TrialObjective


def _load_data(config: SearchConfig) -> Dataset:
    from ..data.positive import positive_index

    data = load_dataset(config.dataset, data_root=config.data_root, size=config.size, channels=config.channels,
                        fraction=config.fraction, seed=config.seed, **config.splitting())
    data.info.positive = positive_index(data.task, data.name, data.classes, config.positive)
    return data


def _session(config: SearchConfig, study: optuna.Study, data: Dataset, space: Space) -> Session:
    """The session of this process, with the study's record checked against this process's."""
    storage_url = config.storage or DEFAULT_STORAGE
    stored = stored_config(study)
    reproducibility.check(study.user_attrs.get(records.REPRODUCIBILITY),
                          reproducibility.Record.current(config, stored), study.study_name)
    cost_model = stored_cost_model(stored)
    shadow = None
    if config.pruner != "none":
        shadow = shadow_study(study.study_name, storage_of(study), config.pruner, config.epochs)
    objective = TrialObjective(config, data, space, shadow, artifact_dir(storage_url) if config.artifacts else None,
                               cost_model)
    return Session(config, study, data, space, objective)


def prepare(config: SearchConfig) -> Session:
    """Validate ``config`` and the space, load the data, create or resume the study. Nothing is written to the
    storage before every input has been checked."""
    config.validate()
    pick_device(config.device)  # a bad --device is an input error, not a failed trial
    config.study = config.study_name()  # named from what the user gave, before defaults are filled in
    space = load_space(config.space)
    if config.size is None:  # a folder's default size: its median side within the device's budget
        from ..data.sizing import folder_default_size

        choice = folder_default_size(config.dataset, pick_device(config.device).type)
        if choice is not None:
            config.size, config.size_reason = choice.size, choice.reason
    data = _load_data(config)
    if config.size is None:
        config.size = data.size
    storage = open_storage(config.storage)
    device_type = pick_device(config.device).type
    chosen = choose(config, data.size, device_type)  # threads for a new study; a resumed one keeps its own
    config.threads = chosen.threads
    resolved = config.resolved(space.to_dict(), {"task": data.task, "classes": data.classes,
                                                 "counts": {k: len(v) for k, v in data.splits.items()},
                                                 "size": data.size, "channels": data.in_channels,
                                                 "positive": data.info.positive,
                                                 "class_counts": data.class_counts(),
                                                 "duplicates": None if data.info.duplicates is None
                                                 else data.info.duplicates.to_dict()},
                               data_fingerprint(data))
    study = create_or_resume(config, resolved, storage)
    _settle_parallelism(config, chosen, data.size, device_type)
    stored_positive = stored_config(study).get("positive")
    if config.positive is None and stored_positive is not None:  # resumed without --positive: the stored one
        from ..data.positive import positive_index

        config.positive = stored_positive
        data.info.positive = positive_index(data.task, data.name, data.classes, stored_positive)
    return _session(config, study, data, space)


def _settle_parallelism(config: SearchConfig, chosen, size: int, device_type: str) -> None:
    """Workers from the study's final threads (a resumed study keeps the threads it was created with; one from
    before threads were fixed runs as it did: one worker, the process's threads); the choice goes to the start
    line (``config.parallel_reason``)."""
    if config.threads is None:
        chosen = Parallelism(config.workers or max(1, len(config.gpus)),
                             torch.get_num_threads(), "a study from before threads were fixed runs as it did")
    elif config.threads != chosen.threads:
        stored, config.threads = config.threads, None
        chosen = choose(config, size, device_type, stored_threads=stored)
        config.threads = stored
    config.workers = chosen.workers
    config.parallel_reason = chosen.line()


def attach(study_name: str, storage_url: str | None, device: str | None = None) -> Session:
    """A worker's session on an existing study: the configuration comes from the study itself."""
    if device:
        pick_device(device)
    study = load_nas_study(study_name, storage_url)
    config = SearchConfig.from_resolved(stored_config(study))
    config.storage = storage_url
    if device:
        config.device = device
    data = _load_data(config)
    require_same_data(stored_config(study), data, f"study '{study_name}' cannot run on this worker's data")
    return _session(config, study, data, load_space_from(stored_config(study)))


def load_space_from(resolved: dict) -> Space:
    from ..space import parse_space

    return parse_space(resolved["space_definition"], resolved.get("space", "space"))


def run_baselines(session: Session) -> None:
    """Add each requested reference network once, as a trial marked ``kind=baseline``."""
    if not session.config.baselines:
        return
    from ..arch.baselines import baseline_spec

    done = {records.baseline_name(t) for t in session.study.get_trials(deepcopy=False)
            if t.state == TrialState.COMPLETE}
    for name in session.config.baselines:
        if name in done:
            continue
        spec: ArchSpec = baseline_spec(name, session.data.in_channels, session.data.num_classes, session.data.size)
        trial = session.study.ask()
        try:
            with reproducibility.study_threads(session.config):
                values = session.objective.evaluate(trial, spec, BASELINE_TRAINING, attrs={
                    records.KIND: records.BASELINE_KIND, records.BASELINE: name})
        except optuna.TrialPruned:
            session.study.tell(trial, state=TrialState.PRUNED)
        except (TrainingFailed, UserError):
            session.study.tell(trial, state=TrialState.FAIL)
        else:
            session.study.tell(trial, list(values))


def _queued_objective(session: Session, current: dict, deadline: float | None = None):
    from .workers import first_heartbeat

    def objective(trial: optuna.Trial):
        if not trial.user_attrs.get(records.QUEUED):
            trial.set_user_attr(records.STOP_REASON, "the study's trial budget was already met")
            raise BudgetMet("the study's trial budget was already met")
        current["trial_id"] = trial_id(trial)
        interrupts.resume()  # its id is known now: an interrupt from here on re-queues it
        first_heartbeat(session.study, trial)
        trial.set_user_attr(records.WORKER, WORKER_ID)
        slot = trial.user_attrs.get(records.SLOT)
        if session.config.trial_batch and slot is not None:
            try:  # sampled only once the batches before its own have finished
                wait_for_earlier_batches(session.study, int(slot), session.config.trial_batch, deadline)
            except GiveBack as exc:
                current["give_back"] = True
                trial.set_user_attr(records.STOP_REASON, f"given back to the queue: {exc}")
                raise
        try:
            return session.objective(trial)
        except torch.OutOfMemoryError as exc:  # outside training (training turns it into TrainingFailed)
            reason = f"out of memory: {(str(exc).strip() or 'no detail').splitlines()[0]}"
            trial.set_user_attr(records.STOP_REASON, reason)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            raise TrainingFailed(reason) from None

    return objective


def interrupted(exc: BaseException) -> bool:
    """Whether ``exc`` is Ctrl-C/SIGTERM or was raised while handling one: a KeyboardInterrupt that lands in
    Optuna's tell turns into an UnboundLocalError in ``_run_trial``'s clean-up, which must not read as a crash."""
    while exc is not None:
        if isinstance(exc, KeyboardInterrupt):
            return True
        exc = exc.__context__
    return False


_FROZEN = False


def _freeze_long_lived() -> None:
    """Once per process: move what is alive (torch, sklearn, the data) out of the collector's reach. Full
    collections otherwise rescan those ~500k objects (~0.25 s each) at unpredictable moments inside trials."""
    global _FROZEN
    if not _FROZEN:
        gc.collect()
        gc.freeze()
        _FROZEN = True


def run_queue(session: Session, timeout: float | None = None, callbacks=()) -> None:
    """Run queued trials until none wait and none runs on a lost worker (or ``timeout`` seconds pass).
    Failed trials are recorded, not raised; an interrupted trial (Ctrl-C, SIGTERM) is re-queued."""
    from sqlalchemy.exc import OperationalError

    from .workers import await_lost_trials, failed_elsewhere, requeue_interrupted

    deadline = None if timeout is None else time.monotonic() + timeout
    _freeze_long_lived()
    current: dict = {}
    objective = _queued_objective(session, current, deadline)
    busy = 0
    while True:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            break
        if waiting(session.study) == 0 and not await_lost_trials(session.study, deadline):
            break
        current.clear()
        try:
            interrupts.check()
            interrupts.defer()  # until the objective knows which queued trial it got
            with reproducibility.study_threads(session.config):
                    session.study.optimize(objective, n_trials=1, timeout=left,
                                       catch=(TrainingFailed, BudgetMet, GiveBack), callbacks=list(callbacks),
                                       gc_after_trial=False, show_progress_bar=False)
            if current.get("give_back"):
                give_back(session.study, storage_of(session.study).get_trial(current["trial_id"]))
        except BaseException as exc:
            interrupts.resume_quietly()
            if interrupted(exc):
                if "trial_id" in current:
                    number = requeue_interrupted(session.study, current["trial_id"])
                    log.warning("interrupted: the running trial was re-queued as trial %s", number)
                interrupts.handled()
                raise KeyboardInterrupt from None
            if isinstance(exc, (ValueError, optuna.exceptions.UpdateFinishedTrialError)) \
                    and failed_elsewhere(session.study, current.get("trial_id")):
                log.warning("another worker declared this worker's trial lost (no heartbeat in time) and "
                            "re-queued it; going on with the queue")
                continue
            # sqlite answers "busy" at once (no lock wait) when two workers' transactions would deadlock; the
            # transaction was rolled back, so waiting a moment and going on is safe. A trial that was running is
            # left to the heartbeat, which re-queues it.
            busy += 1
            if not isinstance(exc, OperationalError) or "locked" not in str(exc) or busy > 30:
                raise
            log.debug("storage busy (%s); retrying", str(exc).splitlines()[0])
            time.sleep(0.2 + random.random())
        else:
            busy = 0
            interrupts.resume_quietly()


def search(config: SearchConfig, callbacks=(), on_study: Callable[[optuna.Study], None] | None = None
           ) -> optuna.Study:
    """``nas-med search`` as a function: prepare, baselines, queue ``config.trials`` trials and run them.
    ``on_study`` is given the study as soon as it is created or resumed, before any trial (what it stores there
    survives an interrupted search)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    session = prepare(config)
    if on_study is not None:
        on_study(session.study)
    from .estimate import preflight

    preflight(session, callbacks)  # size line, folder summary, time estimate, baseline warnings
    run_baselines(session)
    top_up_queue(session.study, config.trials)
    if config.init_only:  # create and queue only: workers started elsewhere run the trials
        return session.study
    if config.workers > 1 or config.gpus:
        from .workers import run_local_workers

        run_local_workers(session, config, callbacks)
    else:
        run_queue(session, config.timeout, callbacks)
    return session.study


