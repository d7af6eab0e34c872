"""Progress of the commands that train outside a search (``confirm``, ``export``, ``front --retrain``, ``sweep``).

On a terminal: a rich progress bar with the stage, step k of n and the time left, moving with every epoch of the
run in training; the end of every run (best epoch, validation loss) is printed above it. With output piped: one
header line (dataset, split sizes, image size, device, precision), one line per fold / settle variant x seed /
seed / ensemble member and per finished run (with its validation loss), and, during a run, a line with its epoch
k/E at least every ``LINE_SECONDS`` (a batch job's log never stays silent for long)."""
from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..progress import Event, listening

__all__ = ["LINE_SECONDS", "StageDisplay", "header_line", "stage_progress"]

# the steps that take the time, and the outer stage they belong to
UNITS = {"fold": "confirm", "settle": "settle", "seed": "retrain", "member": "ensemble"}
LINE_SECONDS = 30.0  # piped: the longest silence while a run trains (an epoch line, or a "still training" line)


def header_line(study, device: str | None = None) -> str:
    """One line naming the study's data and where the work runs."""
    from ..search.records import stored_config
    from ..train import pick_device

    cfg = stored_config(study)
    info = cfg.get("dataset_info") or {}
    counts = info.get("counts") or {}
    dev = pick_device(device or cfg.get("device") or "auto")
    from ..precision import resolve_precision

    precision = resolve_precision(cfg.get("precision") or "auto", dev).name
    classes = info.get("classes") or []
    positive = info.get("positive")
    pos = f", positive class {classes[positive]}" if positive is not None and positive < len(classes) else ""
    return (f"study {study.study_name}: dataset {cfg.get('dataset')}, train {counts.get('train', '?')} / val "
            f"{counts.get('val', '?')} / test {counts.get('test', '?')} images, {info.get('size', '?')} px, "
            f"{info.get('channels', '?')} channel(s){pos}; device {dev}, precision {precision}")


class StageDisplay:
    """A progress listener (``nas_med.progress``): counts the time-taking steps (folds, settle runs, seeds, ensemble
    members) of the current kind to estimate what is left; ``plan`` announces how many there will be. A ``run``
    event (epoch k of E of the run in training) moves the bar, or, piped, prints a line once ``interval`` seconds
    have passed since the last one; a background tick prints one too when an epoch outlasts ``interval``."""

    def __init__(self, console: Console, tty: bool, header: str | None = None, interval: float | None = None):
        self.console, self.tty, self.header = console, tty, header
        self.interval = LINE_SECONDS if interval is None else float(interval)
        self.began = self.start = time.monotonic()  # the command's start, the current kind of step's start
        self.done = 0
        self.total: int | None = None
        self.unit: str | None = None  # the kind of step being counted
        self.planned = False  # confirm announced its folds
        self.line = ""  # the current step's line
        self.running = None  # the latest ``run`` event of the run in training, None between runs
        self.last = time.monotonic()  # when the last line was printed
        self.stamp = ""  # the last time stamp printed (``_stamp``)
        self.bar: Progress | None = None
        self.task = None
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def plan(self, steps: int) -> None:
        self.total = max(1, steps)

    def left(self) -> str:
        """The time since the command started and, once a step of the current kind is done, the estimate of the
        rest of that kind's steps."""
        now, finished, run = time.monotonic(), self.done, self.running
        if run is not None and run.n:  # the step in training counts by its share of epochs done
            finished = self.done - 1 + run.k / run.n
        if finished <= 0 or self.total is None:
            return f"elapsed {now - self.began:.0f} s"
        rest = (now - self.start) / finished * max(0, self.total - finished)
        return f"elapsed {now - self.began:.0f} s, ~{rest:.0f} s left"

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._on(event)

    def _on(self, event: Event) -> None:
        if self.header:  # printed with the first step, so that an input error stays a one-line message
            self._print(self.header)
            self.header = None
        if event.stage == "confirm" and event.k == 1 and not self.planned:
            self.plan(event.n * int(event.info.get("folds", 1)))
            self.planned, self.unit, self.done, self.start = True, "fold", 0, time.monotonic()
        if event.stage in UNITS:
            if event.stage != self.unit:  # a new kind of step: count (and time) its steps afresh
                self.unit, self.done, self.start = event.stage, 0, time.monotonic()
                self.plan(event.n)
            elif not self.planned:  # settling close variants adds seeds to the count it announced
                self.plan(event.n)
            self.line = f"{UNITS[event.stage]}: {event.text}"
            self._show(self.line, always=True)
            self.done += 1  # steps started; the estimate at step k uses the k - 1 finished before it
            return
        if event.stage == "run":
            self.running = event
            self._epoch(event)
            return
        if event.stage == "fitted":
            self.running = None
            loss, auc = event.info.get("val_loss"), event.info.get("val_auc")
            figures = "" if loss is None else f", validation loss {loss:.4f}" + (
                "" if auc is None else f", AUC {auc:.4f}")
            self._print(f"  done: {event.text}: best epoch {event.k} of {event.n}{figures}{self._stamp(True)}")
            return
        if event.stage in ("confirm", "confirmed", "export", "point", "calibration", "teacher", "fidelity"):
            self._show(f"{event.stage}: {event.text}" if event.stage != "confirmed" else f"confirm: {event.text}")

    def _epoch(self, event: Event) -> None:
        """The bar moves by the epoch's share of a step; piped, a line once ``interval`` has passed."""
        if self.bar is not None:
            finished = max(0, self.done - 1) + (event.k / event.n if event.n else 0)
            self.bar.update(self.task, description=f"{self.line} - epoch {event.k}/{event.n}", completed=finished,
                            total=self.total)
        elif event.k and time.monotonic() - self.last >= self.interval:
            self._print(self._running_line(event))

    def _running_line(self, event: Event) -> str:
        loss = event.info.get("val_loss")
        state = (f"epoch {event.k}/{event.n}" + ("" if loss is None else f", validation loss {loss:.4f}")
                 if event.k else f"epoch 1/{event.n} running")
        return f"  training {event.text}: {state}{self._stamp(True)}"

    def _tick(self) -> None:
        """Piped: a line when a run has trained ``interval`` seconds without one (an epoch longer than that)."""
        step = min(1.0, max(0.05, self.interval / 2))
        while not self._stop.wait(step):
            with self._lock:
                if self.running is not None and time.monotonic() - self.last >= self.interval:
                    self._print(self._running_line(self.running))

    def _print(self, line: str) -> None:
        self.last = time.monotonic()
        console = self.console if self.bar is None else self.bar.console
        console.print(line, soft_wrap=True, highlight=False, markup=False)

    def _stamp(self, always: bool = False) -> str:
        """`` [elapsed ..., ~... left]`` for a piped line; a heading printed at the same moment as the line before
        (confirm's "cross-validated AUC" and next-candidate lines after a fold's end) gets none, not a repeat."""
        stamp = f" [{self.left()}]"
        if not always and stamp == self.stamp:
            return ""
        self.stamp = stamp
        return stamp

    def _show(self, line: str, always: bool = False) -> None:
        if self.bar is not None:
            self.bar.update(self.task, description=line, completed=max(0, self.done), total=self.total)
        else:
            self._print(f"{line}{self._stamp(always)}")

    def __enter__(self) -> StageDisplay:
        if self.tty:
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
                                console=self.console, transient=True)
            self.bar.__enter__()
            self.task = self.bar.add_task("starting", total=None)
        elif self.interval > 0:
            self._ticker = threading.Thread(target=self._tick, name="stage-progress", daemon=True)
            self._ticker.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        if self.bar is not None:
            self.bar.__exit__(*exc)


@contextmanager
def stage_progress(study=None, device: str | None = None, console: Console | None = None,
                   lines: bool = False, interval: float | None = None) -> Iterator[StageDisplay]:
    """Show the progress events of the block (header first, from the study's stored configuration); ``lines``:
    plain lines even on a terminal (beside another live display, as in a sweep); ``interval``: the longest
    silence of piped output while a run trains (default ``LINE_SECONDS``)."""
    console = console or Console(stderr=True)
    tty = not lines and (sys.stderr.isatty() if console.file is sys.stderr else console.is_terminal)
    header = None
    if study is not None:
        try:
            header = header_line(study, device)
        except Exception:  # noqa: BLE001 - a header never stops the command
            pass
    with StageDisplay(console, tty, header, interval) as display, listening(display):
        yield display
