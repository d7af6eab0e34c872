"""The ``nas-med`` command: each sub-command lives in its own module with a ``register(cli)`` function."""
from __future__ import annotations

import importlib
import importlib.util
import logging

import click

from ..errors import UserError

COMMAND_MODULES = ("datasets", "arch", "search", "worker", "dashboard", "front", "confirm", "export", "predict",
                   "evaluate", "report", "sweep")


class _Group(click.Group):
    """Turns a UserError raised anywhere below into one line on stderr and exit code 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(2)
        except Exception as exc:  # a storage that cannot be written (read-only, locked, full, wrong schema)
            from ..search.storage import storage_failure

            failure = storage_failure(exc)
            if failure is None:
                raise
            click.echo(f"Error: {failure}", err=True)
            ctx.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="nas-med")
def cli() -> None:
    """Neural architecture search for small medical image datasets."""


for _name in COMMAND_MODULES:
    if importlib.util.find_spec(f"{__package__}.{_name}") is not None:
        importlib.import_module(f"{__package__}.{_name}").register(cli)


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
