"""``nas-med worker``: join an existing study and run its queued trials (on this machine or any other)."""
from __future__ import annotations

import os
import sys

import click

from ..search import interrupts


@click.command("worker")
@click.option("--study", "study_name", required=True, help="Name of an existing study.")
@click.option("--storage", required=True, envvar="NAS_MED_STORAGE", show_envvar=True,  # workers.STORAGE_ENV
              help="The study's storage URL (or journal file).")
@click.option("--gpus", default=None, metavar="0,1,...",
              help="GPU(s) for this worker (CUDA_VISIBLE_DEVICES); several: one worker process per GPU.")
@click.option("--device", default=None, help="Device for this worker (default: the study's).")
@click.option("--threads", type=int, default=None,
              help="CPU threads for this worker (trials of a study that fixes its threads per trial use those).")
@click.option("--timeout", type=float, default=None, help="Stop starting trials after this many seconds.")
@click.option("--quiet", is_flag=True, help="No line per finished trial.")
def worker(study_name: str, storage: str, gpus: str | None, device: str | None, threads: int | None,
           timeout: float | None, quiet: bool) -> None:
    """Run queued trials of STUDY until none is left (a trial whose worker died is re-run)."""
    import optuna

    from ..errors import UserError
    from ..search.workers import GPU_ENV, parse_gpus

    if threads is not None and threads < 1:
        raise UserError(f"--threads must be at least 1, got {threads}.")
    if timeout is not None and timeout <= 0:
        raise UserError(f"--timeout must be positive seconds, got {timeout:g}.")
    gpu_list = parse_gpus(gpus)
    if gpu_list and device not in (None, "auto", "cuda"):
        raise UserError(f"--gpus {gpus} needs --device auto or cuda, got '{device}'.")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if len(gpu_list) > 1:
        _launch(study_name, storage, gpu_list, timeout, quiet)
        return
    if gpu_list:  # before anything initialises CUDA
        os.environ[GPU_ENV] = gpu_list[0]
        device = "cuda"
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    interrupts.install()  # Ctrl-C and `docker stop`: re-queue the running trial, then exit
    try:
        _run(study_name, storage, device, timeout, quiet)
    except KeyboardInterrupt:
        click.echo("Interrupted: the running trial was re-queued.", err=True)
        sys.exit(130)


def _run(study_name: str, storage: str, device: str | None, timeout: float | None, quiet: bool) -> None:
    from ..search.runner import attach, run_queue
    from ..search.workers import unfinished
    from .progress import SearchProgress

    session = attach(study_name, storage, device)
    if not unfinished(session.study):
        click.echo(f"study '{study_name}': no queued trial is left; nothing to do.", err=True)
        return
    run_queue(session, timeout, callbacks=[] if quiet else [SearchProgress(0, quiet=True)])


def _launch(study_name: str, storage: str, gpus: tuple[str, ...], timeout: float | None, quiet: bool) -> None:
    """One worker process per GPU, watched until they exit."""
    from ..search.storage import mask_url
    from ..search.study import load_nas_study
    from ..search.workers import check_gpus, start_workers, unfinished, watch
    from .progress import SearchProgress

    check_gpus(gpus, "cuda")
    study = load_nas_study(study_name, storage)
    procs = start_workers(study_name, storage, len(gpus), gpus=gpus, timeout=timeout)
    try:
        watch(study, procs, [] if quiet else [SearchProgress(0, quiet=True)])
    except KeyboardInterrupt:
        click.echo("Interrupted: the running trials were re-queued.", err=True)
        sys.exit(130)
    failed = [p for p in procs if p.popen.returncode != 0]
    for p in failed:
        click.echo(f"Warning: {p.outcome()}", err=True)
    if failed and unfinished(study):
        click.echo(f"Error: {unfinished(study)} queued trial(s) of '{study_name}' in {mask_url(storage)} are not "
                   "finished.", err=True)
        sys.exit(1)


def register(cli: click.Group) -> None:
    cli.add_command(worker)
