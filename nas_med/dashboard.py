"""optuna-dashboard on a nas-med storage, with the storage's artifact folder served (the CAM grids).

``open_dashboard`` checks the storage and binds the port (so a bad URL or a port in use fails at once, as a
UserError); the returned :class:`Dashboard` then serves in the foreground (``serve_forever``, the CLI) or in a
background thread (``start``, for notebooks).
"""
from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from .errors import UserError
from .search.storage import DEFAULT_STORAGE, artifact_dir, is_journal, mask_url, open_storage

__all__ = ["Dashboard", "can_open_browser", "describe", "hide_internal_studies", "mark_choice", "open_dashboard"]

log = logging.getLogger(__name__)
LOOPBACK = "127.0.0.1"


class _ThreadedServer(ThreadingMixIn, WSGIServer):
    """One thread per request (the dashboard's page fetches several API routes at once)."""

    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    """Request lines go to the debug log, not to the console."""

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        log.debug("%s %s", self.address_string(), format % args)


@dataclass
class Dashboard:
    """A bound (not yet serving) optuna-dashboard server."""

    server: WSGIServer
    storage_url: str
    artifact_dir: Path | None
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def host(self) -> str:
        return str(self.server.server_address[0])

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        """Where to point a browser (the loopback address when listening on all interfaces)."""
        host = self.host
        if host in ("0.0.0.0", "::", ""):
            host = LOOPBACK
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/dashboard"

    def serve_forever(self) -> None:
        """Serve until interrupted (Ctrl-C) or :meth:`stop` is called from another thread."""
        try:
            self.server.serve_forever(poll_interval=0.2)
        finally:
            self.server.server_close()

    def start(self) -> Dashboard:
        """Serve in a daemon thread and return at once (notebooks); :meth:`stop` ends it."""
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="nas-med-dashboard", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join()
            self._thread = None
        self.server.server_close()


def _check_exists(url: str) -> None:
    """A dashboard only reads: a file storage that does not exist is a typo, not something to create."""
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        if str(path) not in ("", ":memory:") and not path.is_file():
            raise UserError(f"no study storage at '{url}' (file not found); run 'nas-med search' first or "
                            "pass --storage.")
    elif is_journal(url) and not Path(url).is_file():
        raise UserError(f"no journal storage at '{url}' (file not found).")


def _check_host(host: str) -> None:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        try:
            socket.getaddrinfo(host, None)
        except socket.gaierror:
            raise UserError(f"--host '{host}' is neither an IP address nor a known host name.") from None


def mark_choice(study, rule=None) -> int | None:
    """Mark the minimalist choice (under ``rule``, a ``select.Rule``, default ``Rule()``) in its trial's dashboard note with the rule's reason (and in the study's note);
    a trial marked before and no longer chosen gets its plain note back. Returns the chosen trial's number, or
    None when the study has no choice yet. Best effort: a note never fails a command."""
    from optuna.trial import Trial
    from optuna_dashboard import save_note

    from .search import records
    from .search._optuna_private import trial_id
    from .search.artifacts import note_of, save_trial_note
    from .select import choose

    try:
        choice = choose(study, None, rule)
    except UserError:
        return None
    try:
        by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
        old = (study.user_attrs.get(records.MARKED_CHOICE) or {}).get("trial")
        if old is not None and old != choice.trial.number and old in by_number:
            live = Trial(study, trial_id(by_number[old]))
            save_trial_note(live, note_of(live, by_number[old].values))
        live = Trial(study, trial_id(choice.trial))
        save_trial_note(live, note_of(live, choice.trial.values, mark=choice.reason))
        study.set_user_attr(records.MARKED_CHOICE, {"trial": choice.trial.number, "reason": choice.reason})
        save_note(study, f"**★ Minimalist choice: trial {choice.trial.number}.** {choice.reason}\n")
    except Exception as exc:  # noqa: BLE001 - the mark is a convenience
        log.warning("could not mark the choice in the dashboard notes: %s", exc)
    return choice.trial.number


def hide_internal_studies(storage):
    """``storage`` with ``get_all_studies`` filtered: the ``<study>:pruning`` shadow studies (internal to the
    pruning of multi-objective trials) are not listed, so the dashboard neither shows nor offers to delete them.
    optuna-dashboard reads every study list and study page through ``get_all_studies``."""
    from .search.pruning import SHADOW_SUFFIX

    everything = storage.get_all_studies

    def get_all_studies():
        return [s for s in everything() if not s.study_name.endswith(SHADOW_SUFFIX)]

    storage.get_all_studies = get_all_studies  # the instance keeps its class: the dashboard checks isinstance
    return storage


def open_dashboard(storage_url: str | None = None, host: str = LOOPBACK, port: int = 8080) -> Dashboard:
    """Open the storage at ``storage_url`` and bind optuna-dashboard to ``host:port`` (port 0: any free one).

    The storage's artifact folder (``search.storage.artifact_dir``) is served under ``/artifacts/...`` so the
    CAM grids show on each trial's page. Raises UserError for a storage that cannot be opened or does not exist,
    a bad host, or a port that is taken.
    """
    from optuna.artifacts import FileSystemArtifactStore
    from optuna_dashboard import wsgi

    url = str(storage_url or DEFAULT_STORAGE)
    if not 0 <= port <= 65535:
        raise UserError(f"--port must be in 0..65535, got {port}.")
    _check_host(host)
    _check_exists(url)
    storage = hide_internal_studies(open_storage(url, heartbeat=False))
    folder = artifact_dir(url)
    if not folder.is_dir():
        log.warning("no artifact folder at %s: trials will show no CAM grids", folder)
    app = wsgi(storage, artifact_store=FileSystemArtifactStore(str(folder)))
    server_class = _ThreadedServer
    if ":" in host:
        server_class = type("_ThreadedServer6", (_ThreadedServer,), {"address_family": socket.AF_INET6})
    try:
        server = make_server(host, port, app, server_class=server_class, handler_class=_QuietHandler)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise UserError(f"port {port} on {host} is already in use; choose another with --port.") from None
        if exc.errno == errno.EACCES:
            raise UserError(f"no permission to listen on {host}:{port} (ports below 1024 need root).") from None
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}.") from None
    return Dashboard(server, url, folder)


def can_open_browser() -> bool:
    """Whether a graphical browser can be expected (never launch a text browser inside the user's terminal)."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def describe(storage_url: str, url: str) -> str:
    """The line the CLI prints: the dashboard's URL and its storage, any password masked."""
    return f"optuna-dashboard for {mask_url(storage_url)} at {mask_url(url)}"
