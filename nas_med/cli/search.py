"""``nas-med search``: run (or resume) a four-objective architecture search."""
from __future__ import annotations

import sys

import click
from rich.console import Console

from ..search.config import PRUNERS, SAMPLERS, SearchConfig
from .options import data_options


@click.command("search")
@click.option("--dataset", default="synthetic", show_default=True,
              help="synthetic, a MedMNIST 2D name, radimagenet-msk or folder:PATH.")
@data_options
@click.option("--space", default="default", show_default=True, help="Search space: a shipped name or a YAML file.")
@click.option("--trials", type=int, default=SearchConfig.trials, show_default=True, help="Trials to add this run.")
@click.option("--timeout", type=float, default=None, help="Stop starting trials after this many seconds.")
@click.option("--study", default=None, help="Study name (default: derived from dataset, size and fraction).")
@click.option("--storage", default=None, help="sqlite:///..., postgresql+psycopg://... or a journal file. "
                                               "[default: sqlite:///studies/nas-med.db]")
@click.option("--sampler", default="tpe", show_default=True, help=f"One of {', '.join(SAMPLERS)}.")
@click.option("--pruner", default="median", show_default=True, help=f"One of {', '.join(PRUNERS)}.")
@click.option("--device", default="auto", show_default=True, help="auto (CUDA, then MPS, then CPU), cpu, cuda:N.")
@click.option("--epochs", type=int, default=SearchConfig.epochs, show_default=True, help="Epochs per candidate.")
@click.option("--baselines", default="", help="Reference networks to add, e.g. minicnn,resnet18.")
@click.option("--cam-images", type=int, default=SearchConfig.cam_images, show_default=True,
              help="Validation images on which CAM quality is judged.")
@click.option("--cam-method", default="gradcam", show_default=True,
              help="gradcam, ablationcam, gradcam++, hirescam or layercam.")
@click.option("--class-weighting/--no-class-weighting", default=False, help="Weight the loss by class frequency.")
@click.option("--workers", type=int, default=1, show_default=True, help="Local worker processes.")
@click.option("--quiet", is_flag=True, help="One log line per trial instead of the live display.")
def search_command(**kwargs) -> None:
    """Search architectures; run again with the same --study to add trials."""
    from ..search.runner import search
    from .front import print_front
    from .progress import SearchProgress

    data_root = kwargs.pop("data_root")
    baselines = tuple(b.strip() for b in kwargs.pop("baselines").split(",") if b.strip())
    config = SearchConfig(**kwargs, data_root=data_root, baselines=baselines)
    console = Console()
    try:
        with SearchProgress(config.trials, config.quiet) as progress:
            study = search(config, callbacks=[progress])
    except KeyboardInterrupt:
        click.echo("Interrupted: the running trial was marked failed; run the same command to resume.", err=True)
        sys.exit(130)
    print_front(study, console)
    console.print(f"study '{study.study_name}': {len(study.trials)} trials stored. "
                  "Browse with: nas-med dashboard" + (f" --storage {config.storage}" if config.storage else ""))


def register(cli: click.Group) -> None:
    cli.add_command(search_command)
