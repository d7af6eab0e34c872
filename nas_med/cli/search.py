"""``nas-med search``: run (or resume) a four-objective architecture search."""
from __future__ import annotations

import functools
import sys

import click
from rich.console import Console

from ..search.config import PRUNERS, SAMPLERS, SearchConfig
from .options import absolute_dataset, data_options, read_option, split_options, storage_option


@click.command("search")
@click.option("--dataset", default="synthetic", show_default=True,
              help="synthetic, a MedMNIST 2D name, radimagenet-msk or folder:PATH.")
@data_options
@split_options
@click.option("--space", default="default", show_default=True, help="Search space: a shipped name or a YAML file.")
@click.option("--trials", type=int, default=SearchConfig.trials, show_default=True, help="Trials to run this time (queued ones left by an interrupted run count).")
@click.option("--timeout", type=float, default=None, help="Stop starting trials after this many seconds.")
@click.option("--study", default=None, help="Study name (default: derived from dataset, size and fraction).")
@storage_option("sqlite:///..., postgresql+psycopg://... or a journal file")
@click.option("--sampler", default="tpe", show_default=True, help=f"One of {', '.join(SAMPLERS)}.")
@click.option("--pruner", default="median", show_default=True, help=f"One of {', '.join(PRUNERS)}.")
@click.option("--device", default="auto", show_default=True, help="auto (CUDA, then MPS, then CPU), cpu, cuda:N.")
@click.option("--precision", default="auto", show_default=True,
              help="auto (bf16 on CPUs with AMX/AVX-512-BF16 and on bf16 GPUs, fp16 on older GPUs, else fp32), "
                   "fp32, bf16 or fp16.")
@click.option("--epochs", type=int, default=SearchConfig.epochs, show_default=True, help="Epochs per candidate.")
@click.option("--baselines", default="", help="Reference networks to add, e.g. minicnn,resnet18.")
@click.option("--cam-images", type=int, default=SearchConfig.cam_images, show_default=True,
              help="Validation images on which CAM quality is judged.")
@click.option("--cam-method", default="gradcam", show_default=True,
              help="gradcam, ablationcam, gradcam++, hirescam or layercam.")
@click.option("--positive", default=None, metavar="CLASS",
              help="Binary tasks: the class whose recall is the sensitivity (default: the class meaning disease, "
                   "e.g. malignant for breastmnist, pneumonia for pneumoniamnist; else class 1). Stored on the study.")
@click.option("--class-weighting/--no-class-weighting", default=False, help="Weight the loss by class frequency.")
@click.option("--workers", type=int, default=None,
              help="Local worker processes, each running one trial at a time (default: on the CPU, for images up "
                   "to 64 px, one single-threaded trial per core, at most --trial-batch; larger images and GPUs: "
                   "one worker, or one per --gpus). 0: only create the study (and baselines) and queue --trials "
                   "trials, for `nas-med worker`s started elsewhere.")
@click.option("--gpus", default=None, metavar="0,1,...",
              help="GPUs for local workers (CUDA_VISIBLE_DEVICES each): one worker per GPU, round-robin if "
                   "--workers is larger.")
@click.option("--epoch-time", default=SearchConfig.epoch_time, show_default=True,
              help="model: epoch_seconds from the cost model of a reference CPU (the same on any machine and load, "
                   "so the study repeats); measured: this machine's measured time (does not repeat).")
@click.option("--threads", type=int, default=None,
              help="torch CPU threads of every trial, fixed with the study (default: 1 for images up to 64 px on the "
                   "CPU, else this machine's cores); the "
                   "thread count changes float sums, so it is part of what makes a study repeat.")
@click.option("--trial-batch", type=int, default=SearchConfig.trial_batch, show_default=True,
              help="Trials proposed together, each from the finished trials of earlier batches only: any number "
                   "of workers runs the same trials. 0: each trial is sampled when it starts (with several "
                   "workers, timing then changes the study).")
@click.option("--quiet", is_flag=True, help="One log line per trial instead of the live display.")
@click.option("--recipe", "recipe_file", default=None, type=click.Path(dir_okay=False),
              help="A recipe file (studies/NAME.yaml): its search section fills the options not given here, its "
                   "final recipe is stored on the study for export, front --retrain, sweep and report.")
def search_command(**kwargs) -> None:
    """Search architectures; run again with the same --study to add trials."""
    recipe = _apply_recipe_file(kwargs, kwargs.pop("recipe_file"))
    from ..errors import UserError

    data_root = kwargs.pop("data_root")
    baselines = tuple(b.strip() for b in kwargs.pop("baselines").split(",") if b.strip())
    gpus = kwargs.pop("gpus")
    if kwargs["workers"] is not None and kwargs["workers"] < 0:
        raise UserError(f"--workers must be 0 (only create the study and queue its trials) or more, "
                        f"got {kwargs['workers']}.")
    init_only = kwargs["workers"] == 0
    if init_only:
        kwargs["workers"] = 1
    config = SearchConfig(**kwargs, data_root=data_root, baselines=baselines)
    config.validate()  # before torch and Optuna are imported: a bad value is a quick one-line error
    from ..final.recipe_file import store_recipe  # kept on the study as soon as it exists
    from ..search import interrupts
    from ..search.runner import search
    from ..search.storage import DEFAULT_STORAGE, mask_url
    from ..search.workers import WorkersFailed, check_gpus, parse_gpus
    from .front import print_front
    from .progress import SearchProgress

    gpus = parse_gpus(gpus)
    config.study = config.study_name()  # named from the dataset as given (folder:imgs -> folder-imgs)
    config.dataset = absolute_dataset(config.dataset)  # stored absolute
    check_gpus(gpus, config.device)
    config.gpus, config.init_only = tuple(gpus), init_only
    storage_hint = f" --storage {mask_url(config.storage)}" if config.storage else ""
    console = Console()
    failure = None
    interrupts.install()  # Ctrl-C stops at once, or at the next epoch if Python swallowed it
    try:
        # the live panel is for terminals; elsewhere (logs, CI, docker) one line per trial reads better
        quiet = config.quiet or init_only or not sys.stderr.isatty()
        with SearchProgress(0 if init_only else config.trials, quiet) as progress:
            try:
                study = search(config, callbacks=[progress], on_study=None if recipe is None else
                               functools.partial(store_recipe, recipe=recipe))
            except WorkersFailed as exc:
                failure, study = exc, None
    except KeyboardInterrupt:
        click.echo("Interrupted: the running trials were re-queued; run the same command (or `nas-med worker`) "
                   "to finish them.", err=True)
        sys.exit(130)
    if failure is not None:
        click.echo(f"Error: {failure}", err=True)
        sys.exit(1)
    if init_only:
        from ..search.study import waiting

        storage = mask_url(config.storage or DEFAULT_STORAGE)
        console.print(f"study '{study.study_name}': {waiting(study)} queued trials wait. Run them with: "
                      f"nas-med worker --study {study.study_name} --storage {storage}", soft_wrap=True,
                      highlight=False)
        return
    print_front(study, console)
    from ..dashboard import mark_choice

    mark_choice(study)
    console.print(f"study '{study.study_name}': {len(study.trials)} trials stored. "
                  f"Browse with: nas-med dashboard{storage_hint}")
    from ..confirm import small_validation

    small = small_validation(study)
    if small:
        console.print(f"Hint: {small}; one run's validation AUC is noisy. Run `nas-med confirm --study "
                      f"{study.study_name}{storage_hint}` to choose on cross-validated AUCs before exporting.",
                      soft_wrap=True, highlight=False, markup=False)


def _apply_recipe_file(kwargs: dict, path: str | None):
    """The recipe file's search options for every option left at its default (None without a file)."""
    if path is None:
        return None
    from click.core import ParameterSource

    from ..final.recipe_file import read_recipe_file

    recipe = read_recipe_file(path)
    ctx = click.get_current_context()
    params = {p.name: p for p in ctx.command.params}
    for key, value in recipe.search.items():
        if ctx.get_parameter_source(key) in (ParameterSource.DEFAULT, None):
            kwargs[key] = read_option(params[key], value, ctx, f"recipe file '{path}': search: {key}")
    if kwargs.get("channels") is not None:
        kwargs["channels"] = int(kwargs["channels"])
    return recipe


def register(cli: click.Group) -> None:
    cli.add_command(search_command)
