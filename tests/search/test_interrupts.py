"""Ctrl-C/SIGTERM in trial-running processes: an interrupt swallowed by a callback is raised again later."""
from __future__ import annotations

import subprocess
import sys

import pytest
from optuna.trial import TrialState

from nas_med.search import SearchConfig, interrupts
from nas_med.search.records import QUEUED
from nas_med.search.runner import interrupted, prepare, run_queue
from nas_med.search.study import top_up_queue

SWALLOWED = """
import weakref
from nas_med.search import interrupts
interrupts.install()

class Thing:
    pass

thing = Thing()
ref = weakref.ref(thing, lambda r: interrupts._request(2, None))  # Ctrl-C lands in a weakref callback
del thing                                                          # the KeyboardInterrupt cannot propagate
print("went on", flush=True)
try:
    interrupts.check()
except KeyboardInterrupt:
    print("stopped at the next check", flush=True)
"""


@pytest.fixture
def queued(tmp_path):
    """A prepared tiny search with one queued trial, run in this process."""
    config = SearchConfig(dataset="synthetic", size=16, space="tiny", trials=1, epochs=1, study="s",
                          storage=f"sqlite:///{tmp_path}/s.db", cam_images=4, pruner="none", quiet=True,
                          artifacts=False)
    session = prepare(config)
    top_up_queue(session.study, 1)
    return session


def test_an_interrupt_lost_in_a_callback_is_raised_at_the_next_check_without_a_traceback():
    proc = subprocess.run([sys.executable, "-c", SWALLOWED], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["went on", "stopped at the next check"]
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr


def test_a_pending_stop_stops_the_queue_before_the_next_trial_and_is_then_forgotten(queued, monkeypatch):
    session = queued
    monkeypatch.setattr(interrupts, "_pending", True)
    with pytest.raises(KeyboardInterrupt):
        run_queue(session)
    assert [t.state for t in session.study.get_trials()] == [TrialState.WAITING]  # nothing started
    interrupts.check()  # handled: no second interrupt
    run_queue(session)
    assert [t.state for t in session.study.get_trials()] == [TrialState.COMPLETE]


def test_an_interrupt_between_popping_a_trial_and_running_it_requeues_that_trial(queued, monkeypatch):
    """Ctrl-C right after Optuna marked the queued trial RUNNING, before the objective knows its id."""
    from optuna.study.study import Study

    session = queued
    pop = Study._pop_waiting_trial_id

    def pop_then_ctrl_c(self):
        trial_id = pop(self)
        interrupts._request(2, None)  # what the SIGINT handler does
        return trial_id

    monkeypatch.setattr(Study, "_pop_waiting_trial_id", pop_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        run_queue(session)
    trials = session.study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]  # none stranded in RUNNING
    assert trials[1].system_attrs["failed_trial"] == 0
    interrupts.check()  # handled


def test_ctrl_c_during_optunas_tell_is_an_interrupt_not_a_crash(queued, monkeypatch):
    """A KeyboardInterrupt inside Optuna's tell surfaces from ``_run_trial`` as an UnboundLocalError."""
    import optuna.study._optimize as optimize_module

    def interrupted_tell(*args, **kwargs):
        raise KeyboardInterrupt

    session = queued
    monkeypatch.setattr(optimize_module, "_tell_with_warning", interrupted_tell)
    with pytest.raises(KeyboardInterrupt):
        run_queue(session)
    trials = session.study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]  # re-queued for the next run
    assert trials[1].user_attrs[QUEUED]


def test_interrupted_sees_an_interrupt_through_the_exceptions_it_caused():
    try:
        try:
            raise KeyboardInterrupt
        finally:
            raise UnboundLocalError("updated_state")
    except UnboundLocalError as exc:
        assert interrupted(exc)
    assert interrupted(KeyboardInterrupt()) and not interrupted(ValueError("x"))
