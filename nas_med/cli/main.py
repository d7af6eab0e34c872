"""The ``nas-med`` command: each sub-command lives in its own module with a ``register(cli)`` function, imported
and registered here by name, so that a command module that fails to import fails the command line loudly.

Importing this module (and so ``nas-med --help``, every ``--help`` and every argument error) imports click, rich
and the light modules the options need, never torch, Optuna, numpy or SQLAlchemy: a command imports those when
it runs (``tests/cli/test_startup.py`` guards it).
"""
from __future__ import annotations

import logging
import sys

import click

from ..errors import UserError, disk_full
from . import arch, confirm, dashboard, datasets, evaluate, export, front, predict, report, search, sweep, worker
from .options import check_numbers

COMMAND_MODULES = (datasets, arch, search, worker, dashboard, front, confirm, export, predict, evaluate, report,
                   sweep)


class _Group(click.Group):
    """Turns a UserError raised anywhere below into one line on stderr and exit code 2."""

    def invoke(self, ctx: click.Context):
        storage = sys.modules.get("nas_med.search.storage_files")
        if storage is not None:
            storage.forget_created()  # (one process may run several commands: tests, notebooks)
        try:
            return super().invoke(ctx)
        except UserError as exc:
            storage = sys.modules.get("nas_med.search.storage_files")
            if storage is not None:
                storage.discard_new()  # a storage file this run created before the error: nothing is left
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(2)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise  # --help, a usage error, Ctrl-C at a prompt: click's own (the storage check below imports Optuna)
        except Exception as exc:  # a storage that cannot be written (read-only, locked, full, wrong schema)
            from ..search.storage import storage_failure
            from ..search.storage_files import discard_new

            train = sys.modules.get("nas_med.train")  # (not imported: nothing trained, nothing failed to)
            if train is not None and isinstance(exc, train.TrainingFailed):  # export, retrain, confirm, sweep
                click.echo(f"Error: {ctx.invoked_subcommand}: training failed ({exc}). Check "
                           "the learning rate of the recipe (a recipe file's final section) or the space.", err=True)
                ctx.exit(2)
            failure = storage_failure(exc) or disk_full(exc)  # (a storage's own file first: it names the storage)
            if failure is None:
                raise
            discard_new()  # a storage file this run created and could not fill: nothing partial is left
            click.echo(f"Error: {failure}", err=True)
            ctx.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="nas-med")
def cli() -> None:
    """Neural architecture search for small medical image datasets."""


for _module in COMMAND_MODULES:
    _module.register(cli)
check_numbers(cli)  # every int/float option of every command: finite and within its bounds (options.BOUNDS)


def quiet_library_warnings() -> None:
    """Optuna's experimental/deprecation notices are for developers, not for the console of a search (matched by
    message and module: importing Optuna for its warning class would slow every command's start)."""
    import warnings

    for message in (r".* is experimental \(supported from v", r"Argument ``\w+`` is an experimental feature"):
        warnings.filterwarnings("ignore", message=message)  # optuna.exceptions.ExperimentalWarning's texts
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")
    warnings.filterwarnings("ignore", message="Heartbeat of storage", category=UserWarning)


def main() -> None:
    """Console-script entry point."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    quiet_library_warnings()
    cli(prog_name="nas-med")


if __name__ == "__main__":
    main()
