"""The ``nas-med`` command: each sub-command lives in its own module with a ``register(cli)`` function."""
from __future__ import annotations

import importlib
import importlib.util
import logging
import sys

import click

from ..errors import UserError, disk_full
from .options import check_numbers

COMMAND_MODULES = ("datasets", "arch", "search", "worker", "dashboard", "front", "confirm", "export", "predict",
                   "evaluate", "report", "sweep")


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


for _name in COMMAND_MODULES:
    if importlib.util.find_spec(f"{__package__}.{_name}") is not None:
        importlib.import_module(f"{__package__}.{_name}").register(cli)
check_numbers(cli)  # every int/float option of every command: finite and within its bounds (options.BOUNDS)


def quiet_library_warnings() -> None:
    """Optuna's experimental/deprecation notices are for developers, not for the console of a search."""
    import warnings

    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")
    warnings.filterwarnings("ignore", message="Heartbeat of storage", category=UserWarning)


def main() -> None:
    """Console-script entry point."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    quiet_library_warnings()
    cli(prog_name="nas-med")


if __name__ == "__main__":
    main()
