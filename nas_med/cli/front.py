"""``nas-med front``: the Pareto front as a table, baselines beside it, the minimalist choice marked."""
from __future__ import annotations

import click
import optuna
from rich.console import Console
from rich.table import Table

from ..select import completed, is_baseline, minimalist, pareto_front, value


def front_table(study: optuna.Study, auc_tolerance: float = 0.01, cam_floor: float | None = 0.0) -> tuple[Table, str]:
    """The table and the sentence explaining the minimalist choice."""
    cands = completed(study)
    front = pareto_front(cands)
    choice = minimalist(front, auc_tolerance, cam_floor)
    table = Table(title=f"Pareto front of {study.study_name} ({len(front)} of {len(cands)} completed candidates)")
    for col in ("", "trial", "AUC", "params", "FLOPs", "epoch s", "CAM quality", "architecture"):
        table.add_column(col, justify="right" if col not in ("", "architecture") else "left")
    rows = sorted(front, key=lambda t: value(t, "params")) + completed(study, baselines=True)
    for t in rows:
        mark = "★" if choice and t.number == choice.trial.number else ("baseline" if is_baseline(t) else "")
        flops = t.user_attrs.get("flops")
        table.add_row(mark, str(t.number), f"{value(t, 'auc'):.4f}", f"{int(value(t, 'params')):,}",
                      "-" if flops is None else f"{flops / 1e6:.1f} M", f"{value(t, 'epoch_seconds'):.3f}",
                      f"{value(t, 'cam_quality'):+.3f}",
                      t.user_attrs.get("baseline") or t.user_attrs.get("summary", ""))
    reason = "no completed candidate yet" if choice is None else f"★ minimalist choice: {choice.reason}"
    return table, reason


def print_front(study: optuna.Study, console: Console | None = None, **rule) -> None:
    console = console or Console()
    table, reason = front_table(study, **rule)
    console.print(table)
    console.print(reason)


@click.command("front")
@click.option("--study", "study_name", required=True, help="Study name.")
@click.option("--storage", default=None, help="Storage URL (default sqlite:///studies/nas-med.db).")
@click.option("--auc-tolerance", type=float, default=0.01, show_default=True)
@click.option("--cam-floor", type=float, default=0.0, show_default=True)
def front(study_name: str, storage: str | None, auc_tolerance: float, cam_floor: float) -> None:
    """Show the Pareto front of a study with the minimalist choice marked."""
    from ..search.study import load_nas_study

    print_front(load_nas_study(study_name, storage), auc_tolerance=auc_tolerance, cam_floor=cam_floor)


def register(cli: click.Group) -> None:
    cli.add_command(front)
