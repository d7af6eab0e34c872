"""Batched user-attribute writes: one transaction in RDB storages, one by one elsewhere, same result."""
from __future__ import annotations

import optuna
import pytest
from sqlalchemy import event

from nas_med.search.storage import open_storage, set_user_attrs

ATTRS = {f"key{i}": {"values": list(range(i)), "name": f"v{i}"} for i in range(12)}


def test_rdb_storage_writes_all_attrs_in_one_commit(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path}/s.db", heartbeat=False)
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    commits = []
    event.listen(storage.engine, "commit", lambda conn: commits.append(1))
    set_user_attrs(trial, ATTRS)
    assert len(commits) == 1
    assert trial.user_attrs == ATTRS  # the running trial sees them at once
    set_user_attrs(trial, {"key0": "replaced"})  # an existing key is overwritten, not duplicated
    study.tell(trial, 1.0)
    stored = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path}/s.db").trials[0].user_attrs
    assert stored == {**ATTRS, "key0": "replaced"}


@pytest.mark.parametrize("url", ["journal.log", None])
def test_other_storages_get_the_same_attrs(tmp_path, url):
    storage = open_storage(str(tmp_path / url)) if url else optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    set_user_attrs(trial, ATTRS)
    study.tell(trial, 1.0)
    assert study.trials[0].user_attrs == ATTRS


def test_a_finished_trial_is_not_written(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path}/s.db", heartbeat=False)
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    study.tell(trial, 1.0)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        set_user_attrs(trial, {"late": 1})
    assert "late" not in study.trials[0].user_attrs
