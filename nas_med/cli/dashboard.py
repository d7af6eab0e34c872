"""``nas-med dashboard``: optuna-dashboard on a study storage, the CAM grids served as trial artifacts."""
from __future__ import annotations

import signal
import threading

import click

from .options import storage_option


@click.command("dashboard")
@storage_option("Storage URL or journal file", envvar="NAS_MED_STORAGE", show_envvar=True)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 exposes the dashboard to the network).")
@click.option("--port", type=int, default=8080, show_default=True, help="Port to listen on (0: any free port).")
@click.option("--browser/--no-browser", default=True, show_default=True,
              help="Open the dashboard in a browser (only where a graphical one can be expected).")
def dashboard(storage: str | None, host: str, port: int, browser: bool) -> None:
    """Browse the studies of a storage: objectives, Pareto front, Grad-CAM grids and notes per trial."""
    from ..dashboard import can_open_browser, describe, open_dashboard

    board = open_dashboard(storage, host=host, port=port)
    click.echo(describe(board.storage_url, board.url))
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"Warning: listening on {host}; anyone who can reach this machine can read and edit the studies.",
                   err=True)
    click.echo("Press Ctrl-C to stop.")
    if browser and can_open_browser():
        import webbrowser

        threading.Timer(0.5, webbrowser.open, args=(board.url,)).start()
    signal.signal(signal.SIGTERM, _stop)  # `docker stop`, `kill`: close the socket and exit 0
    try:
        board.serve_forever()
    except KeyboardInterrupt:
        click.echo("Stopped.")


def _stop(_signum, _frame) -> None:
    raise SystemExit(0)


def register(cli: click.Group) -> None:
    cli.add_command(dashboard)
