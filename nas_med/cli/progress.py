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
        left = (elapsed / self.done) * (self.total - self.done) if self.done else float("nan")
        table = Table.grid(padding=(0, 2))
        table.add_row("trial", f"{self.done} of {self.total}", "elapsed", f"{elapsed:.0f} s",
                      "remaining", "?" if left != left else f"~{left:.0f} s")
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
            self.console.print(f"trial {trial.number} {trial.state.name.lower()} {values} {reason}".rstrip())
