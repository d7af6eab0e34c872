"""``nas-med sweep``: one study per (fraction, input size), the minimalist choice tested at each, as a table."""
from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from ..search.config import PRUNERS, SAMPLERS
from .options import storage_option


def sweep_table(result) -> Table:
    """The sweep's rows as a rich table (one line per point and architecture)."""
    from ..report.sweep import display_rows

    head, cells = display_rows(result.rows)
    table = Table(title=f"Sweep {result.name}: test results per training fraction and input size")
    for col in head:
        table.add_column(col, justify="left" if col in ("architecture", "chosen architecture") else "right",
                         overflow="fold")
    for row in cells:
        table.add_row(*row)
    return table


@click.command("sweep")
@click.option("--dataset", default="synthetic", show_default=True,
              help="synthetic, a MedMNIST 2D name, radimagenet-msk or folder:PATH.")
@click.option("--data-root", type=click.Path(file_okay=False), default=None, help="Folder holding the dataset files.")
@click.option("--fractions", required=True, help="Training-split fractions, e.g. 0.005,0.01,0.03,0.1.")
@click.option("--sizes", default=None, help="Input sizes in px, e.g. 64,128,224. [default: the dataset's size]")
@click.option("--channels", type=click.Choice(["1", "3"]), default=None, help="Convert to 1 or 3 channels.")
@click.option("--trials-per-point", type=int, default=12, show_default=True, help="Search trials per point.")
@click.option("--epochs", type=int, default=8, show_default=True, help="Epochs per candidate and per retraining.")
@click.option("--space", default="default", show_default=True, help="Search space: a shipped name or a YAML file.")
@storage_option("sqlite:///..., postgresql+psycopg://... or a journal file")
@click.option("--sweep", "name", default=None, help="Sweep name; point studies are NAME:f<fraction>-s<size>. "
                                                    "[default: <dataset>-sweep]")
@click.option("--baselines", default="", help="Reference networks to test at every point, e.g. resnet18.")
@click.option("--seeds", type=int, default=3, show_default=True, help="Retraining seeds per tested network.")
@click.option("--workers", type=int, default=1, show_default=True, help="Local worker processes per point.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Folder for sweep.csv, sweep.json and the figures. [default: studies/sweeps/<sweep>]")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of splits, fractions and search.")
@click.option("--sampler", default="tpe", show_default=True, help=f"One of {', '.join(SAMPLERS)}.")
@click.option("--pruner", default="median", show_default=True, help=f"One of {', '.join(PRUNERS)}.")
@click.option("--device", default="auto", show_default=True, help="auto (CUDA, then MPS, then CPU), cpu, cuda:N.")
@click.option("--cam-images", type=int, default=16, show_default=True,
              help="Validation images on which CAM quality is judged.")
@click.option("--cam-method", default="gradcam", show_default=True, help="gradcam, ablationcam, gradcam++, ...")
@click.option("--class-weighting/--no-class-weighting", default=False, help="Weight the loss by class frequency.")
@click.option("--auc-tolerance", type=float, default=0.01, show_default=True, help="Minimalist rule: AUC tolerance.")
@click.option("--cam-floor", type=float, default=0.0, show_default=True, help="Minimalist rule: CAM-quality floor.")
@click.option("--quiet", is_flag=True, help="One log line per trial instead of the live display.")
def sweep_command(**kwargs) -> None:
    """Search every (fraction, size) point, test the minimalist choice at each; run again to resume."""
    from ..report.sweep import write_sweep
    from ..sweep import SweepConfig, parse_fractions, parse_sizes, run_sweep
    from .progress import SearchProgress

    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, 200)  # a redirected table stays one line per row
    err = Console(stderr=True)
    kwargs["fractions"] = parse_fractions(kwargs["fractions"])
    kwargs["sizes"] = parse_sizes(kwargs["sizes"])
    kwargs["baselines"] = tuple(b.strip() for b in kwargs["baselines"].split(",") if b.strip())
    kwargs["channels"] = int(kwargs["channels"]) if kwargs["channels"] else None
    if kwargs["data_root"] is not None:  # stored on every point's study: absolute, so it reads from anywhere
        kwargs["data_root"] = str(Path(kwargs["data_root"]).expanduser().absolute())
    config = SweepConfig(**kwargs)

    def progress(point, trials: int):
        err.print(f"[bold]{point.study_name(config.sweep_name())}[/]: {trials} trial(s) to run")
        return SearchProgress(trials, config.quiet, err)

    try:
        from .stages import stage_progress

        with stage_progress(console=err, lines=True):  # retraining seeds of each point's choice
            result = run_sweep(config, progress=progress, notify=lambda line: err.print(line, highlight=False))
        result.files = write_sweep(result.name, result.rows, result.out_dir)
    except KeyboardInterrupt:
        click.echo("Interrupted: run the same command to resume the sweep.", err=True)
        sys.exit(130)
    console.print(sweep_table(result))
    console.print(f"sweep '{result.name}': {len({r['study'] for r in result.rows})} point studies; wrote "
                  + ", ".join(str(p) for p in result.files))


def register(cli: click.Group) -> None:
    cli.add_command(sweep_command)
