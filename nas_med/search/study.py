"""Creating, resuming and budgeting a nas-med study: four named objectives, the resolved config stored on it."""
from __future__ import annotations

import optuna
from optuna.trial import TrialState

from ..errors import UserError, look_up
from .config import DIRECTIONS, OBJECTIVES, SAMPLERS, SearchConfig, differences
from .records import CONFIG, QUEUED, REPRODUCIBILITY, SLOT, stored_config
from .storage import DEFAULT_STORAGE, mask_url, open_storage


def make_sampler(name: str, seed: int, batch: int = 0) -> optuna.samplers.BaseSampler:
    """The sampler named ``name``: TPE (multivariate), NSGA-II/III, random, GP. ``batch`` > 0: queued trials are
    sampled in batches of that size from the trials of earlier batches (``batches.BatchedSampler``: the same
    trials whatever the timing); 0: each trial from what has finished when it starts (TPE's constant liar)."""
    look_up(name, SAMPLERS, "sampler")
    if batch > 0:
        from .batches import BatchedSampler

        return BatchedSampler(lambda slot_seed: _base_sampler(name, slot_seed, constant_liar=False), seed, batch)
    return _base_sampler(name, seed, constant_liar=True)


def _base_sampler(name: str, seed: int, constant_liar: bool) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=constant_liar,
                                          n_startup_trials=8)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=12)
    if name == "nsga3":
        return optuna.samplers.NSGAIIISampler(seed=seed, population_size=12)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def create_or_resume(config: SearchConfig, resolved: dict, storage=None) -> optuna.Study:
    """The study of ``config``: created with its directions, metric names and reproducibility record, or resumed
    if the stored configuration matches (its fixed settings, such as threads per trial, then replace
    ``config``'s); a conflicting configuration raises UserError saying what differs."""
    from . import reproducibility

    storage = storage or open_storage(config.storage)
    name = config.study_name()
    sampler = make_sampler(config.sampler, config.seed, config.trial_batch)
    try:
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler)
    except KeyError:
        study = optuna.create_study(study_name=name, storage=storage, sampler=sampler, directions=list(DIRECTIONS))
        study.set_metric_names(list(OBJECTIVES))
        study.set_user_attr(CONFIG, resolved)
        study.set_user_attr(REPRODUCIBILITY, reproducibility.Record.current(config, resolved).to_dict())
        return study
    if len(study.directions) != len(OBJECTIVES):
        raise UserError(f"study '{name}' exists in {mask_url(config.storage or 'the default storage')} "
                        "but is not a nas-med study (it has a different number of objectives).")
    diff = differences(stored_config(study), resolved)
    if diff:
        raise UserError(f"study '{name}' already exists with another configuration ({'; '.join(diff)}). "
                        "Use another --study name or the stored settings.")
    reproducibility.adopt_stored(config, stored_config(study))
    study.sampler = make_sampler(config.sampler, config.seed, config.trial_batch)
    return study


def load_nas_study(name: str, storage_url: str | None, sampler: str | None = None) -> optuna.Study:
    """An existing nas-med study by name; unknown names raise UserError listing the studies that exist."""
    storage = open_storage(storage_url, create=False)
    names = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)
             if not s.study_name.endswith(":pruning")]
    if name not in names:
        where = mask_url(storage_url or DEFAULT_STORAGE)
        if not names:
            raise UserError(f"unknown study '{name}': {where} holds no study yet (create one with `nas-med search "
                            f"--study {name}`).")
        try:
            look_up(name, names, "study")
        except UserError as exc:
            raise UserError(f"{exc} (storage {where})") from None
    study = optuna.load_study(study_name=name, storage=storage)
    config = SearchConfig.from_resolved(stored_config(study))
    study.sampler = make_sampler(sampler or config.sampler, config.seed, config.trial_batch)
    return study


def waiting(study: optuna.Study) -> int:
    """Queued trials not yet taken by a worker."""
    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


def top_up_queue(study: optuna.Study, trials: int) -> int:
    """Make ``trials`` queued trials wait (counting those already waiting); returns how many were added.
    Workers only run queued trials, so the budget holds whatever the number of workers. Each gets the next
    slot (its place in the budget: what it is sampled from, and its training seed)."""
    add = max(0, trials - waiting(study))
    existing = study.get_trials(deepcopy=False)
    slots = [t.user_attrs[SLOT] for t in existing if t.user_attrs.get(SLOT) is not None]
    queued_before = any(t.user_attrs.get(QUEUED) for t in existing)  # before slots existed: number after them
    first = max(slots) + 1 if slots else (len(existing) if queued_before else 0)
    for i in range(add):
        study.enqueue_trial({}, user_attrs={QUEUED: True, SLOT: first + i})
    return add
