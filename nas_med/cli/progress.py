"""The live console display of a running search (rich), or one log line per trial with --quiet."""
from __future__ import annotations

import time

import optuna
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console
from rich.live import Live
from rich.table import Table

from ..search import records
from ..select import completed, minimalist, value


class SearchProgress:
    """An Optuna callback that refreshes a status panel after every trial."""

    def __init__(self, total: int, quiet: bool = False, console: Console | None = None):
        self.total, self.quiet = total, quiet
        self.console = console or Console(stderr=True)
        self.start = time.monotonic()
        self.done = 0
        self.live: Live | None = None
        self.estimate = None  # search.estimate.Estimate, from ``preflight``
        self.trials_start = self.start

    def preflight(self, lines: list[str], estimate=None) -> None:
        """Print the pre-flight lines (default size, folder summary, time estimate) before the first trial."""
        for line in lines:
            self.console.print(line, soft_wrap=True, highlight=False, markup=False)
        if estimate is not None:
            self.estimate, self.trials_start = estimate, time.monotonic()

    def remaining(self) -> float:
        """Seconds left: the start's estimate of the trials not yet run, scaled by measured / predicted so far."""
        est, left = self.estimate, self.total - self.done
        if est is None:
            elapsed = time.monotonic() - self.start
            return (elapsed / self.done) * left if self.done else float("nan")
        predicted_done = est.baselines_s + self.done * est.trial_s
        measured = time.monotonic() - self.trials_start
        scale = measured / predicted_done if self.done and predicted_done > 0 else 1.0
        return scale * left * est.trial_s

    def __enter__(self) -> SearchProgress:
        if not self.quiet:
            self.live = Live(self._panel(None), console=self.console, refresh_per_second=2, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def _panel(self, study: optuna.Study | None) -> Table:
        elapsed = time.monotonic() - self.start
        left = self.remaining()
        table = Table.grid(padding=(0, 2))
        table.add_row("trial", f"{self.done} of {self.total}", "elapsed", f"{elapsed:.0f} s",
                      "remaining", "?" if left != left else f"~{left:.0f} s")
        if self.estimate is not None:
            table.add_row("estimate at start", f"~{self.estimate.total_s:.0f} s", "per trial",
                          f"~{self.estimate.trial_s:.0f} s", "", "")
        if study is not None:
            states = [t.state for t in study.get_trials(deepcopy=False)]
            cands = completed(study)
            best = max((value(t, "auc") for t in cands), default=float("nan"))
            choice = minimalist(cands, cam_floor=None)
            table.add_row("completed", str(states.count(TrialState.COMPLETE)), "pruned",
                          str(states.count(TrialState.PRUNED)), "failed", str(states.count(TrialState.FAIL)))
            table.add_row("best AUC", f"{best:.4f}", "smallest within 0.01",
                          "-" if choice is None else f"#{choice.trial.number} ({int(value(choice.trial, 'params')):,} "
                          f"params, AUC {value(choice.trial, 'auc'):.4f})", "", "")
        return table

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.done += 1
        if self.live is not None:
            self.live.update(self._panel(study))
        else:
            reason = records.stop_reason(trial)
            values = "" if trial.values is None else " ".join(
                f"{k}={v:.4g}" for k, v in zip(("auc", "params", "epoch_s", "cam"), trial.values))
            left = "" if self.estimate is None else f" [~{self.remaining():.0f} s left]"
            self.console.print(f"trial {trial.number} {trial.state.name.lower()} {values} {reason}".rstrip() + left,
                               markup=False, soft_wrap=True)
