"""``nas-med worker``: join an existing study and run its queued trials."""
from __future__ import annotations

import click
import torch


@click.command("worker")
@click.option("--study", "study_name", required=True, help="Name of an existing study.")
@click.option("--storage", required=True, help="The study's storage URL (or journal file).")
@click.option("--device", default=None, help="Device for this worker (default: the study's).")
@click.option("--threads", type=int, default=None, help="CPU threads for this worker.")
@click.option("--timeout", type=float, default=None, help="Stop starting trials after this many seconds.")
def worker(study_name: str, storage: str, device: str | None, threads: int | None, timeout: float | None) -> None:
    """Run trials of STUDY until its trial budget is met."""
    import optuna

    from ..search.runner import attach, run_queue
    from .progress import SearchProgress

    if threads is not None:
        if threads < 1:
            from ..errors import UserError

            raise UserError(f"--threads must be at least 1, got {threads}.")
        torch.set_num_threads(threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    session = attach(study_name, storage, device)
    run_queue(session, timeout, callbacks=[SearchProgress(0, quiet=True)])


def register(cli: click.Group) -> None:
    cli.add_command(worker)
