"""``nas-med report``: write a study's self-contained HTML report."""
from __future__ import annotations

import click

from ..select import DEFAULT_AUC_TOLERANCE, DEFAULT_CAM_FLOOR
from .options import storage_option


@click.command("report")
@click.option("--study", "study_name", required=True, help="Study name.")
@storage_option()
@click.option("--out", default=None, help="Folder for index.html. [default: studies/reports/<study>]")
@click.option("--auc-tolerance", type=float, default=DEFAULT_AUC_TOLERANCE, show_default=True,
              help="Minimalist rule: AUC tolerance below the best.")
@click.option("--cam-floor", type=float, default=DEFAULT_CAM_FLOOR, show_default=True,
              help="Minimalist rule: lowest acceptable CAM quality.")
@click.option("--prefer", default=None, help="Minimalist rule: what decides among near-best candidates, "
                                             "e.g. epoch_seconds or params:2,epoch_seconds:1.")
def report(study_name: str, storage: str | None, out: str | None, auc_tolerance: float, cam_floor: float,
           prefer: str | None) -> None:
    """Write an HTML report of a study: Pareto plots, hypervolume, learning curves, Grad-CAM grids, trials."""
    from ..report import write_report
    from ..select import Rule

    path = write_report(study_name, storage, out, rule=Rule(auc_tolerance, cam_floor, prefer))
    click.echo(f"Report written to {path}")


def register(cli: click.Group) -> None:
    cli.add_command(report)
