"""The refinement of a search's time estimate (``search.refine``) on synthetic sequences of finished trials: it
converges to the measured rate and never moves the expected total by more than its step between refinements."""
from __future__ import annotations

import random

import pytest

from nas_med.search.refine import MAX_STEP, PRIOR_TRIALS, Refinement


def _run(predicted: float, actual: list[float], at_once: int = 1) -> list[float]:
    """Expected totals after each finished trial when the trials take ``actual`` seconds, ``at_once`` in parallel."""
    ref = Refinement(predicted / at_once, len(actual))
    totals, elapsed = [ref.total], 0.0
    for done, seconds in enumerate(actual, start=1):
        elapsed += seconds / at_once
        ref.update(done, elapsed)
        totals.append(ref.total)
    return totals


def _steps(totals: list[float]) -> float:
    return max(max(b / a, a / b) for a, b in zip(totals, totals[1:]))


@pytest.mark.parametrize("factor", [1 / 10, 1 / 4.5, 1.0, 4.5, 10.0])
def test_an_estimate_off_by_a_factor_converges_without_a_jump(factor):
    totals = _run(10.0, [10.0 * factor] * 30)
    assert _steps(totals) <= MAX_STEP + 1e-9 < 2
    assert totals[-1] == pytest.approx(300.0 * factor)
    assert abs(totals[-6] / (300.0 * factor) - 1) < 0.25  # close well before the end


def test_a_slow_first_trial_moves_the_total_by_a_step_at_most_not_to_its_own_rate():
    # the case: ~24 s per trial predicted, the first trial (start-up included) ~220 s
    totals = _run(24.0, [220.0] + [30.0] * 19)
    assert totals[1] <= MAX_STEP * totals[0] and _steps(totals) <= MAX_STEP + 1e-9
    assert totals[-1] == pytest.approx(220.0 + 19 * 30.0)


def test_noisy_and_parallel_trials_never_jump_and_a_right_estimate_stays_right():
    rng = random.Random(0)
    actual = [rng.lognormvariate(0, 0.8) * 20 for _ in range(40)]  # pruned short ones, long ones
    totals = _run(20.0, actual, at_once=2)
    assert _steps(totals) <= MAX_STEP + 1e-9
    assert totals[-1] == pytest.approx(sum(actual) / 2)
    steady = _run(20.0, [20.0] * 10)
    assert all(t == pytest.approx(200.0) for t in steady)


def test_the_blend_weighs_the_prediction_as_a_few_trials():
    ref = Refinement(10.0, 100)
    assert ref.per_trial(0, 0.0) == 10.0
    assert ref.per_trial(int(PRIOR_TRIALS), PRIOR_TRIALS * 40.0) == pytest.approx(20.0)  # geometric middle
    assert ref.update(100, 2000.0) == 0.0 and ref.total == 2000.0


def test_time_before_the_first_trial_is_not_counted_as_trial_time():
    ref = Refinement(10.0, 4, before_s=30.0)
    assert ref.total == 70.0
    ref.update(1, 40.0)  # 30 s of baselines as predicted, then one trial of 10 s
    assert ref.total == pytest.approx(70.0)
    assert ref.left(45.0) == pytest.approx(25.0)
