"""Workers on a real PostgreSQL server (the one .ci/run starts): the budget across workers, a worker killed
mid-trial, masked passwords. Each test gets a fresh database."""
from __future__ import annotations

import os
import signal
import time
import uuid

import optuna
import pytest
from click.testing import CliRunner
from optuna.trial import TrialState
from sqlalchemy.engine import make_url
from worker_processes import nas_med, queued_finished, with_epochs

from nas_med.cli.main import cli

pytestmark = [pytest.mark.postgres, pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")]

TINY = ["--size", "16", "--space", "tiny", "--epochs", "1", "--cam-images", "4", "--pruner", "none",
        "--study", "pg", "--quiet"]


@pytest.fixture
def database(postgres_url):
    """A new, empty database on the test server (dropped afterwards); yields its SQLAlchemy URL."""
    import psycopg

    server = make_url(postgres_url)
    admin = server.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"nasmed_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield server.set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.slow
def test_three_workers_finish_exactly_the_budget(database, tmp_path):
    proc = nas_med("search", "--storage", database, "--trials", "5", "--workers", "3", *TINY, cwd=tmp_path)
    out, err = proc.communicate(timeout=420)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "Error" not in err and "psycopg" not in err
    study = optuna.load_study(study_name="pg", storage=database)
    assert len(queued_finished(study)) == 5
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    assert len({t.user_attrs["worker"] for t in queued_finished(study)}) >= 2


@pytest.mark.slow
def test_a_worker_killed_mid_trial_has_its_trial_rerun_by_another(database, tmp_path):
    proc = nas_med("search", "--storage", database, "--trials", "3", "--workers", "2", *with_epochs(TINY, 40),
                   cwd=tmp_path, env={"NAS_MED_HEARTBEAT_SECONDS": "3"})  # no heartbeat for 6 s: stale
    victim = None
    deadline = time.monotonic() + 300
    while victim is None and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.3)
        try:
            study = optuna.load_study(study_name="pg", storage=database)
        except KeyError:
            continue
        training = [t for t in study.get_trials(states=(TrialState.RUNNING,)) if "spec" in t.user_attrs]
        if training:  # its architecture is sampled and stored: it is training
            victim = training[0]
    assert victim is not None, "no trial started"
    pid = int(victim.user_attrs["worker"].rsplit(":", 1)[1])
    os.kill(pid, signal.SIGKILL)  # mid-trial: no chance to clean up
    out, err = proc.communicate(timeout=420)
    assert f"(pid {pid}) was killed by SIGKILL" in err
    assert proc.returncode == 0, err  # the other worker finished the budget, so the search succeeded
    study = optuna.load_study(study_name="pg", storage=database)
    trials = study.get_trials(deepcopy=False)
    assert trials[victim.number].state == TrialState.FAIL
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retry) == 1 and retry[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert retry[0].user_attrs["worker"] != victim.user_attrs["worker"]
    assert retry[0].params == trials[victim.number].params  # the same architecture, re-run
    assert len(queued_finished(study)) == 3
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))


def test_a_failing_postgres_url_never_prints_its_password():
    url = "postgresql+psycopg://nasmed:s3cret-pw@127.0.0.1:1/nasmed"  # nothing listens on port 1
    for args in (["worker", "--study", "x", "--storage", url], ["front", "--study", "x", "--storage", url]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2
        assert "s3cret-pw" not in result.output + result.stderr
        assert "nasmed:***@127.0.0.1:1" in result.stderr and "Traceback" not in result.stderr


def test_an_unknown_database_on_the_server_is_one_clear_line(postgres_url):
    url = make_url(postgres_url).set(database="nasmed_does_not_exist", password="pw-123")
    result = CliRunner().invoke(cli, ["worker", "--study", "x", "--storage", url.render_as_string(False)])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "nasmed_does_not_exist" in result.stderr and "pw-123" not in result.stderr
