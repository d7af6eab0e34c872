"""The live console display of a running search (rich), or one log line per trial with --quiet.

The live panel is a renderable that rich's Live redraws twice a second (auto refresh), so the clock and the time
left move while a trial trains; the running trial's architecture, epoch k/E and validation AUC so far come from
the objective's progress events (``nas_med.progress``). The study's counts are read only when a trial ends."""
from __future__ import annotations

import time

import optuna
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console
from rich.live import Live
from rich.table import Table

from ..progress import Event, listening
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
        self.refinement = None  # search.refine.Refinement of that estimate, updated as trials finish
        self.trials_start = self.start
        self.study: optuna.Study | None = None
        self.running: Event | None = None  # the latest trial/epoch event of the trial in training
        self._rows: list[tuple] = []  # study rows, recomputed when a trial ends
        self._listen = None

    def preflight(self, lines: list[str], estimate=None) -> None:
        """Print the pre-flight lines (default size, folder summary, time estimate) before the first trial."""
        for line in lines:
            self.console.print(line, soft_wrap=True, highlight=False, markup=False)
        if estimate is not None:
            self.estimate, self.trials_start = estimate, time.monotonic()
            self.refinement = estimate.refinement()

    def remaining(self) -> float:
        """Seconds left: the start's estimate refined by the trials finished so far (``search.refine``)."""
        if self.refinement is None:
            elapsed, left = time.monotonic() - self.start, self.total - self.done
            return (elapsed / self.done) * left if self.done else float("nan")
        return self.refinement.left(time.monotonic() - self.trials_start)

    def __enter__(self) -> SearchProgress:
        self._listen = listening(self.on_event)
        self._listen.__enter__()
        if not self.quiet:
            self.live = Live(self, console=self.console, refresh_per_second=2, auto_refresh=True, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)
        if self._listen is not None:
            self._listen.__exit__(*exc)

    def on_event(self, event: Event) -> None:
        """A progress event of this process's objective: the trial in training and its epochs."""
        if event.stage in ("trial", "epoch"):
            self.running = event

    def __rich__(self) -> Table:  # called by Live on every refresh
        return self._panel(None)

    def running_line(self) -> str:
        ev = self.running
        if ev is None:
            return "-"
        auc = ev.info.get("val_auc")
        epoch = "starting" if ev.k == 0 else f"epoch {ev.k}/{ev.n}" + ("" if auc is None else f", val AUC {auc:.4f}")
        return f"#{ev.info.get('trial', '?')} {epoch}: {ev.text}"

    def _study_rows(self, study: optuna.Study) -> list[tuple]:
        states = [t.state for t in study.get_trials(deepcopy=False)]
        cands = completed(study)
        best = max((value(t, "auc") for t in cands), default=float("nan"))
        choice = minimalist(cands, cam_floor=None)
        return [("completed", str(states.count(TrialState.COMPLETE)), "pruned",
                 str(states.count(TrialState.PRUNED)), "failed", str(states.count(TrialState.FAIL))),
                ("best AUC", f"{best:.4f}", "smallest within 0.01",
                 "-" if choice is None else f"#{choice.trial.number} ({int(value(choice.trial, 'params')):,} "
                 f"params, AUC {value(choice.trial, 'auc'):.4f})", "", "")]

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
            self._rows = self._study_rows(study)
        if self.running is not None:
            table.add_row("training", self.running_line(), "", "", "", "")
        for row in self._rows:
            table.add_row(*row)
        return table

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.done += 1
        if self.refinement is not None:
            self.refinement.update(self.done, time.monotonic() - self.trials_start)
        self.running = None
        if self.live is not None:
            self._rows = self._study_rows(study)
            self.live.refresh()
        else:
            reason = records.stop_reason(trial)
            values = "" if trial.values is None else " ".join(
                f"{k}={v:.4g}" for k, v in zip(("auc", "params", "epoch_s", "cam"), trial.values))
            left = "" if self.estimate is None else f" [~{self.remaining():.0f} s left]"
            self.console.print(f"trial {trial.number} {trial.state.name.lower()} {values} {reason}".rstrip() + left,
                               markup=False, soft_wrap=True)
