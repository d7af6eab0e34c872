"""Every use of Optuna's private API, behind one door (pinned: optuna==5.0.0).

Each helper says why the public API does not do. ``tests/search/test_optuna_private.py`` calls every one of them
on real storages, so an Optuna upgrade that moves a name fails there, loudly, and not in a user's search.
"""
from __future__ import annotations

import optuna
from optuna.storages import BaseStorage, RDBStorage

__all__ = ["OPTIMIZE_LOGGER", "HistoryView", "compute_hypervolume", "heartbeat_enabled", "rdb_backend", "record_heartbeat",
           "set_user_attrs_in_one_commit", "storage_of", "trial_id", "trials_with_heartbeat"]

# The logger Optuna's optimize loop reports failed trials on (we shorten its messages to one line).
OPTIMIZE_LOGGER = "optuna.study._optimize"


def storage_of(study: optuna.Study) -> BaseStorage:
    """The storage object of ``study``: Study has no public accessor, and the shadow study, heartbeats and
    re-queueing must use the very same (cached) storage object."""
    return study._storage


def trial_id(trial: optuna.Trial | optuna.trial.FrozenTrial) -> int:
    """The storage id of a trial: the storage API is keyed by it, trials expose only their number publicly."""
    return trial._trial_id


def rdb_backend(storage: BaseStorage) -> BaseStorage:
    """The RDBStorage behind Optuna's in-process cache wrapper (``_CachedStorage``), else ``storage`` itself."""
    return getattr(storage, "_backend", storage)


def heartbeat_enabled(storage: BaseStorage) -> bool:
    """Whether ``storage`` records heartbeats (no public query)."""
    from optuna.storages._heartbeat import is_heartbeat_enabled

    return is_heartbeat_enabled(storage)


def record_heartbeat(study: optuna.Study, trial: optuna.Trial) -> None:
    """Record a heartbeat of ``trial`` now (Optuna's own heartbeat thread starts a moment later)."""
    storage = storage_of(study)
    if heartbeat_enabled(storage):
        storage.record_heartbeat(trial_id(trial))


def set_user_attrs_in_one_commit(trial: optuna.Trial, attrs: dict) -> bool:
    """Write several user attrs of a running ``trial`` in one transaction (the public ``set_user_attr`` commits
    each key: ~3 ms apiece in sqlite); False, writing nothing, when the storage is not an RDB one."""
    backend = rdb_backend(trial.storage)
    if not isinstance(backend, RDBStorage) or not hasattr(backend, "_set_trial_attr_without_commit"):
        return False
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    with _create_scoped_session(backend.scoped_session, True) as session:
        for key, value in attrs.items():
            backend._set_trial_attr_without_commit(session, models.TrialUserAttributeModel, trial_id(trial), key,
                                                   value)
    trial._cached_frozen_trial.user_attrs.update(attrs)  # what trial.user_attrs returns in this process
    return True


def trials_with_heartbeat(storage: BaseStorage, trial_ids: list[int]) -> list[int]:
    """The trials among ``trial_ids`` that have recorded a heartbeat (only those can ever go stale); Optuna has
    no public query for it."""
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    with _create_scoped_session(rdb_backend(storage).scoped_session) as db:
        rows = db.query(models.TrialHeartbeatModel.trial_id).filter(
            models.TrialHeartbeatModel.trial_id.in_(trial_ids)).all()
    return [row[0] for row in rows]


def compute_hypervolume(points, reference) -> float:
    """Optuna's exact WFG hypervolume (minimisation) of non-dominated ``points``; Optuna does not export it."""
    from optuna._hypervolume import compute_hypervolume as wfg

    return float(wfg(points, reference, assume_pareto=True))


class HistoryView:
    """A study as a sampler or pruner sees it, limited to ``trials`` (in that order): everything else is the real
    study. Samplers and pruners read a study's trials through ``Study._get_trials`` (private) or ``get_trials``
    and offer no public way to sample or prune from a fixed history, which a reproducible search needs: the
    trials of earlier batches only, whatever has finished meanwhile on other workers."""

    def __init__(self, study: optuna.Study, trials: list[optuna.trial.FrozenTrial]):
        self._study = study
        self._history = list(trials)

    def _get_trials(self, deepcopy: bool = True, states=None, use_cache: bool = False) -> list:
        return [t for t in self._history if states is None or t.state in states]

    def get_trials(self, deepcopy: bool = True, states=None) -> list:
        return self._get_trials(deepcopy=deepcopy, states=states)

    @property
    def trials(self) -> list:
        return self._get_trials()

    def __getattr__(self, name: str):
        return getattr(self._study, name)
