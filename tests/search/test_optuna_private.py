"""Every helper of ``nas_med.search._optuna_private`` on real storages: an Optuna upgrade that moves one of the
private names it relies on fails here, with the name, instead of in a user's search."""
from __future__ import annotations

import numpy as np
import optuna
import pytest

from nas_med.search import _optuna_private as private
from nas_med.search.storage import open_storage


@pytest.fixture
def rdb_study(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 'p.db'}", heartbeat=True)
    return optuna.create_study(storage=storage, study_name="p")


def test_storage_and_trial_id_are_the_study_own(rdb_study):
    trial = rdb_study.ask()
    storage = private.storage_of(rdb_study)
    assert isinstance(storage, optuna.storages.BaseStorage)
    assert storage.get_trial(private.trial_id(trial)).number == trial.number
    assert isinstance(private.rdb_backend(storage), optuna.storages.RDBStorage)


def test_user_attrs_in_one_commit_are_stored_and_seen(rdb_study):
    trial = rdb_study.ask()
    assert private.set_user_attrs_in_one_commit(trial, {"a": 1, "b": [2, 3]})
    assert trial.user_attrs == {"a": 1, "b": [2, 3]}
    assert rdb_study.trials[0].user_attrs == {"a": 1, "b": [2, 3]}


def test_user_attrs_in_one_commit_declines_a_non_rdb_storage():
    trial = optuna.create_study().ask()
    assert private.set_user_attrs_in_one_commit(trial, {"a": 1}) is False
    assert trial.user_attrs == {}


def test_heartbeats_are_recorded_and_found(rdb_study):
    trial, other = rdb_study.ask(), rdb_study.ask()
    storage = private.storage_of(rdb_study)
    assert private.heartbeat_enabled(storage)
    assert not private.heartbeat_enabled(optuna.storages.InMemoryStorage())
    private.record_heartbeat(rdb_study, trial)
    ids = [private.trial_id(trial), private.trial_id(other)]
    assert private.trials_with_heartbeat(storage, ids) == [private.trial_id(trial)]


def test_hypervolume_of_a_known_front():
    points = np.array([[0.0, 0.5], [0.5, 0.0]])
    assert private.compute_hypervolume(points, np.array([1.0, 1.0])) == pytest.approx(0.75)


def test_the_optimize_logger_is_optuna_own():
    import importlib

    assert importlib.import_module(private.OPTIMIZE_LOGGER).__name__ == private.OPTIMIZE_LOGGER
