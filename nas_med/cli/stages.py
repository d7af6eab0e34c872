"""Progress of the commands that train outside a search (``confirm``, ``export``, ``front --retrain``, ``sweep``):
a rich progress bar with the stage, step k of n and the time left on a terminal; with output piped, one header
line (dataset, split sizes, image size, device, precision) and one line per fold / seed / stage."""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..progress import Event, listening

__all__ = ["StageDisplay", "header_line", "stage_progress"]

UNITS = {"fold": "confirm", "seed": "retrain"}  # the steps that take the time, and the outer stage they belong to


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
    """A progress listener (``nas_med.progress``): counts the time-taking steps (folds, seeds) to estimate what
    is left; ``plan`` announces how many there will be."""

    def __init__(self, console: Console, tty: bool, header: str | None = None):
        self.console, self.tty, self.header = console, tty, header
        self.start = time.monotonic()
        self.done = 0
        self.total: int | None = None
        self.outer: dict[str, tuple[int, int]] = {}
        self.bar: Progress | None = None
        self.task = None

    def plan(self, steps: int) -> None:
        self.total = max(1, steps)

    def left(self) -> str:
        elapsed = time.monotonic() - self.start
        if not self.done or self.total is None:
            return f"elapsed {elapsed:.0f} s"
        rest = elapsed / self.done * max(0, self.total - self.done)
        return f"elapsed {elapsed:.0f} s, ~{rest:.0f} s left"

    def __call__(self, event: Event) -> None:
        if self.header:  # printed with the first step, so that an input error stays a one-line message
            self.console.print(self.header, soft_wrap=True, highlight=False, markup=False)
            self.header = None
        if event.stage == "confirm" and event.k == 1 and self.total is None:
            self.plan(event.n * int(event.info.get("folds", 1)))
        if event.stage in UNITS:
            if self.total is None:
                self.plan(event.n)
            self._show(f"{UNITS[event.stage]}: {event.text}")
            self.done += 1  # steps started; the estimate at step k uses the k - 1 finished before it
            return
        if event.stage in ("confirm", "confirmed", "export", "point", "calibration"):
            self._show(f"{event.stage}: {event.text}" if event.stage != "confirmed" else f"confirm: {event.text}")

    def _show(self, line: str) -> None:
        if self.bar is not None:
            self.bar.update(self.task, description=line, completed=max(0, self.done), total=self.total)
        else:
            self.console.print(f"{line} [{self.left()}]", soft_wrap=True, highlight=False, markup=False)

    def __enter__(self) -> StageDisplay:
        if self.tty:
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
                                console=self.console, transient=True)
            self.bar.__enter__()
            self.task = self.bar.add_task("starting", total=None)
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


@contextmanager
def stage_progress(study=None, device: str | None = None, console: Console | None = None,
                   lines: bool = False) -> Iterator[StageDisplay]:
    """Show the progress events of the block (header first, from the study's stored configuration); ``lines``:
    plain lines even on a terminal (beside another live display, as in a sweep)."""
    console = console or Console(stderr=True)
    tty = not lines and (sys.stderr.isatty() if console.file is sys.stderr else console.is_terminal)
    header = None
    if study is not None:
        try:
            header = header_line(study, device)
        except Exception:  # noqa: BLE001 - a header never stops the command
            pass
    with StageDisplay(console, tty, header) as display, listening(display):
        yield display
