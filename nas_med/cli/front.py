"""``nas-med front``: the Pareto front as a table, baselines beside it, the minimalist choice marked; with
``--retrain``, the choice and the baselines retrained with several seeds and tested."""
from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.table import Table

from ..search import records
from ..select import (
    DEFAULT_AUC_TOLERANCE,
    DEFAULT_CAM_FLOOR,
    PREFERABLE,
    Rule,
    choose,
    completed,
    confirmed_aucs,
    is_baseline,
    pareto_front,
    value,
)
from .options import recipe_options, storage_option

if TYPE_CHECKING:
    import optuna

RULE_HELP = ("The minimalist rule: among completed candidates on the Pareto front whose validation AUC is within "
             "--auc-tolerance of the best and whose CAM quality is >= --cam-floor (waived, with a note, when none "
             "reaches it), take the fewest parameters, ties by epoch time. --prefer changes the last step: a list "
             f"of objectives ({', '.join(PREFERABLE)}) decides in that order (--prefer epoch_seconds: the fastest "
             "near-best candidate), and weights (--prefer params:2,epoch_seconds:1) rank the near-best candidates "
             "per objective and take the lowest weighted mean rank. --trial N overrides the rule.")


def rule_options(func):
    """--auc-tolerance, --cam-floor, --prefer, --trial: how the model to show, test or export is chosen; the
    command gets the first three as one ``rule`` (``select.Rule``, checked: a bad value is one line, exit 2)."""

    @functools.wraps(func)
    def with_rule(*args, auc_tolerance: float, cam_floor: float, prefer: str | None, **kwargs):
        return func(*args, rule=Rule(auc_tolerance, cam_floor, prefer), **kwargs)

    command = click.option("--trial", "trial_number", type=int, default=None,
                           help="Take this completed trial (any, baselines included) instead of the rule's "
                                "choice.")(with_rule)
    command = click.option("--prefer", default=None, metavar="OBJ[:W][,OBJ[:W]]",
                           help="What decides among the near-best: objectives in order, or weighted "
                                f"(OBJ:W). Objectives: {', '.join(PREFERABLE)}. [default: params,epoch_seconds]")(
        command)
    command = click.option("--cam-floor", type=float, default=DEFAULT_CAM_FLOOR, show_default=True,
                           help="Lowest acceptable CAM quality (ROAD, about -0.5..0.5; -1 lets every candidate "
                                "through).")(command)
    return click.option("--auc-tolerance", type=float, default=DEFAULT_AUC_TOLERANCE, show_default=True,
                        help="How far below the best validation AUC a candidate may be.")(command)


def wide_console() -> Console:
    """A console for tables: when the output is not a terminal and COLUMNS is unset, 160 columns wide (not 80),
    so that logs and pipes get one row per line."""
    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(width=160)
    return console


def print_wide(console: Console, renderable) -> None:
    """Print a table on ``console``: at its own width on a terminal (or with COLUMNS set), else at least 160
    columns wide, so that a pipe or log gets one row per line rather than rich's 80-column default."""
    if console.is_terminal or "COLUMNS" in os.environ or console.width >= 160:
        console.print(renderable)
        return
    width = console.width
    console.width = 160
    try:
        console.print(renderable)
    finally:
        console.width = width


def front_table(study: optuna.Study, rule: Rule | None = None,
                trial_number: int | None = None) -> tuple[Table, str]:
    """The table and the sentence explaining the choice (the minimalist rule's, or ``trial_number``)."""
    cands = completed(study)
    front = pareto_front(cands)
    baselines = completed(study, baselines=True)
    choice = None
    if cands or trial_number is not None:
        choice = choose(study, trial_number, rule)
    table = Table(title=f"Pareto front of {study.study_name} ({len(front)} of {len(cands)} completed candidates)")

    masks = any(t.user_attrs.get(records.MASK_ENERGY) is not None for t in front + baselines)
    measured = any(records.measured_epoch_seconds(t) is not None for t in front + baselines)
    for col in ("", "trial", "AUC", "params", "FLOPs", "epoch s" + (" (model)" if measured else ""),
                *(("measured s",) if measured else ()), "CAM quality", *(("mask energy",) if masks else ()),
                "architecture"):
        if col == "architecture":
            table.add_column(col, overflow="fold")
        else:
            table.add_column(col, justify="left" if col == "" else "right", no_wrap=True)
    cv = confirmed_aucs(study) or {}
    rows = sorted(front, key=lambda t: (value(t, "params"), t.number))
    if choice is not None and choice.trial not in rows and not is_baseline(choice.trial):
        rows.append(choice.trial)  # a --trial pick off the front
    for t in rows + baselines:
        chosen = choice is not None and t.number == choice.trial.number
        mark = "★" if chosen else ""
        if is_baseline(t):
            mark = (mark + " baseline").strip()
        elif t not in front:
            mark += " (off front)"
        flops = records.flops(t)
        auc = f"{value(t, 'auc'):.4f}" + (f" (cv {cv[t.number]:.4f})" if t.number in cv else "")
        table.add_row(mark, str(t.number), auc, f"{int(value(t, 'params')):,}",
                      "-" if flops is None else f"{flops / 1e6:.2f} M", f"{value(t, 'epoch_seconds'):.3f}",
                      *((_three(records.measured_epoch_seconds(t)),) if measured else ()),
                      f"{value(t, 'cam_quality'):+.3f}",
                      *((_three(t.user_attrs.get(records.MASK_ENERGY)),) if masks else ()),
                      records.baseline_name(t) or records.summary(t))
    if choice is None:
        reason = "no completed candidate yet"
    else:
        what = "minimalist choice" if trial_number is None else "chosen"
        reason = f"★ {what}: {choice.reason}"
    return table, reason


def _three(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def print_front(study: optuna.Study, console: Console | None = None, rule: Rule | None = None,
                trial_number: int | None = None) -> None:
    """Print the front table and the sentence saying why the marked trial was chosen."""
    console = console or wide_console()
    table, reason = front_table(study, rule, trial_number)
    print_wide(console, table)
    console.print(reason, soft_wrap=True)
    from ..search.reproducibility import study_note

    note = study_note(study)
    if note:
        console.print(note, soft_wrap=True, highlight=False, markup=False)


def _fmt(entry: dict) -> str:
    mean, std, lo, hi = (entry.get(k) for k in ("mean", "std", "ci_low", "ci_high"))
    if mean is None or mean != mean:
        return "n/a"
    text = f"{mean:.3f}" + ("" if std is None or std != std else f" ± {std:.3f}")
    return text + ("" if lo is None or lo != lo else f" [{lo:.3f}, {hi:.3f}]")


def retrain_table(reports) -> Table:
    """Test metrics of retrained models: mean ± std over seeds [95% bootstrap CI over test images]."""
    first = reports[0]
    table = Table(title=f"Test split ({first.n_test} images): mean ± std over seeds "
                        f"[{first.confidence:.0%} bootstrap CI, {first.n_bootstrap} resamples]")
    pos = getattr(first, "positive", None)
    sens, spec = (f"sensitivity ({pos})", "specificity") if pos else ("sensitivity (macro)", "specificity (macro)")
    for col in ("model", "seeds", "AUC", "accuracy", sens, spec, "epoch s"):
        table.add_column(col, justify="left" if col == "model" else "right", no_wrap=True)
    for i, r in enumerate(reports):
        epoch = r.summary["epoch_seconds"]["mean"]
        table.add_row(("★ " if i == 0 else "") + r.name, str(len(r.seeds)),
                      *(_fmt(r.summary[m]) for m in ("auc", "accuracy", "sensitivity", "specificity")),
                      "n/a" if epoch != epoch else f"{epoch:.3f}")
    return table


@click.command("front", epilog=RULE_HELP)
@click.option("--study", "study_name", required=True, help="Study name.")
@storage_option()
@rule_options
@click.option("--retrain", is_flag=True,
              help="Retrain the choice (and the baselines) with --seeds seeds and report test metrics.")
@click.option("--seeds", type=int, default=3, show_default=True,
              help="With --retrain: seeds per model (the trial's own seed and the ones after it).")
@click.option("--baselines/--no-baselines", default=True, show_default=True,
              help="With --retrain: retrain and test the study's baselines too.")
@click.option("--bootstrap", "n_bootstrap", type=int, default=1000, show_default=True,
              help="Bootstrap resamples of test images for the 95% intervals.")
@click.option("--device", default=None, help="Device for --retrain (default: the trial's, usually auto).")
@click.option("--precision", default=None, help="Precision for --retrain: auto, fp32, bf16, fp16 (default: the "
                                                "trial's, usually auto).")
@lambda f: recipe_options(f, folds=False)
def front(study_name: str, storage: str | None, rule: Rule, trial_number: int | None, retrain: bool, seeds: int, baselines: bool, n_bootstrap: int,
          device: str | None, precision: str | None, recipe: str) -> None:
    """Show the Pareto front of a study with the minimalist choice marked and why.

    The front holds the completed candidates that no other candidate beats on all four objectives (AUC,
    parameters, epoch time, CAM quality); baselines are listed below it."""
    from ..search.study import load_nas_study

    study = load_nas_study(study_name, storage)
    console = wide_console()
    print_front(study, console, rule, trial_number)
    if retrain:
        from ..final import retrain_study
        from .stages import stage_progress

        with stage_progress(study, device):
            reports = retrain_study(study, trial_number, seeds, n_bootstrap=n_bootstrap, baselines=baselines,
                                    device=device, rule=rule, precision=precision, recipe=recipe)
        print_wide(console, retrain_table(reports))


def register(cli: click.Group) -> None:
    cli.add_command(front)
