"""The time left of a running search: the start's estimate refined as trials finish, without jumps.

After ``done`` trials in ``elapsed`` seconds the measured wall time per trial is ``elapsed / done``. One trial says
little (the first one also pays for start-up, a batch's trials finish together, a pruned trial is short), so the
per-trial time used is a geometric blend of the start's prediction and the measurement, the prediction weighing
as ``PRIOR_TRIALS`` finished trials: ``log t = (PRIOR_TRIALS log predicted + done log measured) / (PRIOR_TRIALS +
done)``. The whole search's expected time (elapsed + per-trial time x trials left) then moves by at most a factor
``MAX_STEP`` from one refinement to the next, and never below the time already spent.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

PRIOR_TRIALS = 3.0  # the start's estimate weighs as much as this many finished trials
MAX_STEP = 1.5      # the expected total moves by at most this factor between two refinements (the bar is 2)


@dataclass
class Refinement:
    """The expected wall time of the trials of a search, refined with each finished trial."""

    trial_s: float  # predicted wall time per trial at the start (divided by the trials that run at once)
    trials: int     # trials to run
    before_s: float = 0.0  # predicted seconds before the first trial (baselines), counted in ``elapsed``
    total: float = float("nan")  # the latest expected wall time (elapsed + left)

    def __post_init__(self) -> None:
        if math.isnan(self.total):
            self.total = self.before_s + self.trial_s * self.trials

    def per_trial(self, done: int, elapsed: float) -> float:
        """The blended wall time per trial after ``done`` trials took ``elapsed`` seconds."""
        if done <= 0 or elapsed <= 0 or not self.trial_s > 0:
            return self.trial_s if self.trial_s > 0 else (elapsed / done if done > 0 else float("nan"))
        measured = max(elapsed - self.before_s, 0.1 * elapsed) / done
        weight = done / (done + PRIOR_TRIALS)
        return math.exp((1 - weight) * math.log(self.trial_s) + weight * math.log(measured))

    def update(self, done: int, elapsed: float) -> float:
        """Refine after ``done`` trials finished in ``elapsed`` seconds; returns the seconds left."""
        left = max(0, self.trials - done)
        total = elapsed + self.per_trial(done, elapsed) * left
        if self.total > 0 and math.isfinite(self.total) and math.isfinite(total):
            total = min(max(total, self.total / MAX_STEP), self.total * MAX_STEP)
        self.total = max(total, elapsed) if left else elapsed
        return max(0.0, self.total - elapsed)

    def left(self, elapsed: float) -> float:
        """Seconds left at ``elapsed`` between refinements (the last expected total, less what has passed)."""
        return max(0.0, self.total - elapsed) if math.isfinite(self.total) else float("nan")
