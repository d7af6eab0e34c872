"""Reproducible proposals: the queued trials are sampled in batches of ``trial_batch``, each only from the
finished trials of earlier batches, with a sampler seeded by the trial's slot.

A sampler that sees whatever has finished when a trial starts (TPE's constant liar sees running trials too) makes
the search depend on timing: with two workers, or a busy machine, other trials have finished by then. Here a
trial of slot ``s`` waits until every trial of the slots before its batch has finished, then samples from
exactly those (in slot order), so one worker or ten propose the same architectures. Pruning decisions read the
same history (``ShadowPruning(visible=...)``).
"""
from __future__ import annotations

import logging
import time
import warnings
from typing import Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

from . import interrupts
from ._optuna_private import HistoryView, heartbeat_enabled, storage_of
from .records import QUEUED, SLOT

log = logging.getLogger(__name__)

POLL_SECONDS = 0.25
STALE_CHECK_SECONDS = 10.0
FINISHED_FOR_SAMPLING = (TrialState.COMPLETE, TrialState.PRUNED)


class GiveBack(RuntimeError):
    """The trial cannot start yet (an earlier slot waits in the queue, or time ran out): it is re-queued."""


def batch_start(slot: int, batch: int) -> int:
    """The first slot of ``slot``'s batch."""
    return (slot // batch) * batch


def slot_of(trial: FrozenTrial) -> int | None:
    value = trial.user_attrs.get(SLOT)
    return None if value is None else int(value)


def before(trial: FrozenTrial, start: int) -> bool:
    """Whether ``trial`` belongs to the history of the batch starting at ``start`` (baselines always do)."""
    slot = slot_of(trial)
    return slot is None or slot < start


def history(trials: list[FrozenTrial], start: int) -> list[FrozenTrial]:
    """The trials of ``trials`` that come before slot ``start``, in slot order (baselines first)."""
    keep = [t for t in trials if before(t, start)]
    return sorted(keep, key=lambda t: (-1 if slot_of(t) is None else slot_of(t), t.number))


def slot_seed(seed: int, slot: int) -> int:
    """The sampler seed of one slot: a function of the study's seed and the slot alone."""
    return (int(seed) * 1_000_003 + int(slot)) % (2**32)


class BatchedSampler(optuna.samplers.BaseSampler):
    """Samples each queued trial with ``make_base(slot_seed(seed, slot))`` over the finished trials of the
    batches before its own. Trials without a slot (baselines) use one base sampler over the whole study."""

    def __init__(self, make_base: Callable[[int], optuna.samplers.BaseSampler], seed: int, batch: int):
        if batch < 1:
            raise ValueError(f"batch must be at least 1, got {batch}")
        self.make_base, self.seed, self.batch = make_base, seed, batch
        self._default = make_base(seed)
        self._active: dict[int, tuple[optuna.samplers.BaseSampler, HistoryView]] = {}

    def _for(self, study: optuna.Study, trial: FrozenTrial):
        slot = slot_of(trial)
        if slot is None:
            return self._default, study
        if trial.number not in self._active:  # the first suggestion: the earlier batches have finished by now
            finished = study.get_trials(deepcopy=False, states=FINISHED_FOR_SAMPLING)
            view = HistoryView(study, history(finished, batch_start(slot, self.batch)))
            self._active[trial.number] = (self.make_base(slot_seed(self.seed, slot)), view)
        return self._active[trial.number]

    def infer_relative_search_space(self, study, trial):
        base, view = self._for(study, trial)
        return base.infer_relative_search_space(view, trial)

    def sample_relative(self, study, trial, search_space):
        base, view = self._for(study, trial)
        return base.sample_relative(view, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        base, view = self._for(study, trial)
        return base.sample_independent(view, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values) -> None:
        base, _ = self._active.pop(trial.number, (self._default, None))
        base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:  # each slot's sampler is seeded from the slot: nothing to reseed
        pass


def wait_for_earlier_batches(study: optuna.Study, slot: int, batch: int, deadline: float | None = None) -> None:
    """Block until no trial of a slot before ``slot``'s batch waits or runs. Raises GiveBack when one of them
    waits in the queue (it must run first, maybe on this worker) or ``deadline`` (``time.monotonic()``) passes."""
    start = batch_start(slot, batch)
    if start == 0:
        return
    storage = storage_of(study)
    next_stale_check = time.monotonic() + STALE_CHECK_SECONDS
    said = False
    while True:
        pending = [t for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING))
                   if slot_of(t) is not None and slot_of(t) < start]
        if not pending:
            return
        if any(t.state == TrialState.WAITING for t in pending):
            raise GiveBack(f"slot {slot} waits for slot {min(slot_of(t) for t in pending)} of an earlier batch, "
                           "which is queued again")
        if deadline is not None and time.monotonic() >= deadline:
            raise GiveBack(f"the time ran out while slot {slot} waited for the earlier batch")
        if not said:
            log.debug("slot %d waits for %d trial(s) of earlier batches", slot, len(pending))
            said = True
        interrupts.check()
        if heartbeat_enabled(storage) and time.monotonic() >= next_stale_check:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)
            next_stale_check = time.monotonic() + STALE_CHECK_SECONDS
        time.sleep(POLL_SECONDS)


def give_back(study: optuna.Study, trial: FrozenTrial) -> None:
    """Queue ``trial``'s slot again (so the same history and seed)."""
    study.enqueue_trial({}, user_attrs={QUEUED: True, SLOT: slot_of(trial)}, skip_if_exists=False)
