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
import re
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
        from optuna_dashboard import save_plotly_graph_object

        save_plotly_graph_object(study, _PlotlyJson(choice_plot(study, choice.trial.number)),
                                 graph_object_id=CHOICE_PLOT)
    except Exception as exc:  # noqa: BLE001 - the mark is a convenience
        log.warning("could not mark the choice in the dashboard notes: %s", exc)
    return choice.trial.number


CHOICE_PLOT = "nas-med-choice"  # the id of the study page's Pareto plot with the choice marked (overwritten)


class _PlotlyJson:
    """A plotly figure as its JSON (all ``save_plotly_graph_object`` reads; plotly itself is not needed)."""

    def __init__(self, figure: dict):
        self.figure = figure

    def to_json(self) -> str:
        import json

        return json.dumps(self.figure)


def choice_plot(study, chosen: int) -> dict:
    """A plotly figure (as a dict) of validation AUC against parameters: the completed candidates, the Pareto front,
    the baselines and the minimalist choice (trial ``chosen``) marked with a star, as the report's Pareto plot."""
    from .search import records
    from .select import completed, is_baseline, pareto_front, value

    cands = completed(study)
    front = {t.number for t in pareto_front(cands)}

    def trace(trials, name, **marker):
        return {"type": "scatter", "mode": "markers", "name": name,
                "x": [value(t, "params") for t in trials], "y": [value(t, "auc") for t in trials],
                "text": [f"trial {t.number}: {records.baseline_name(t) or records.summary(t)}" for t in trials],
                "hovertemplate": "%{text}<br>AUC %{y:.3f}, %{x:,} parameters<extra></extra>", "marker": marker}

    picked = [t for t in completed(study, baselines=None) if t.number == chosen]
    data = [trace([t for t in cands if t.number not in front], "candidates", color="#b0b0b0", size=8),
            trace([t for t in cands if t.number in front], "Pareto front", color="#1f77b4", size=10),
            trace([t for t in completed(study, baselines=True) if is_baseline(t)], "baselines", color="#555555",
                  size=9, symbol="x"),
            trace(picked, f"★ minimalist choice (trial {chosen})", color="#d62728", size=20, symbol="star",
                  line={"color": "black", "width": 1})]
    return {"data": data,
            "layout": {"title": {"text": f"Pareto front: ★ trial {chosen} is the minimalist choice"},
                       "xaxis": {"title": {"text": "parameters"}, "type": "log"},
                       "yaxis": {"title": {"text": "validation AUC"}},
                       "legend": {"orientation": "h", "y": -0.25}, "margin": {"l": 60, "r": 20, "t": 50, "b": 40}}}


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


# the page fits the window: optuna-dashboard keeps a user attribute on one line (a trial's spec is 500+ characters),
# which widens the trial page past the window and cuts the note and the CAM grid at its right edge
FIT_STYLE = ("<style>/* nas-med */ p.MuiTypography-root, .MuiCardContent-root p, .MuiCardContent-root code "
             "{ white-space: normal !important; overflow-wrap: anywhere; } .MuiCardContent-root img "
             "{ max-width: 100%; height: auto; }</style>")
METRIC_NAMES = "study:metric_names"  # where Optuna's ``Study.set_metric_names`` keeps them (a study system attr)
_STUDY_PATH = re.compile(r"^/api/studies/(\d+)(/|$)")


def _named_objectives(app, storage, everything):
    """``app`` (optuna-dashboard's WSGI app) with three answers changed:

    * the page (``/dashboard...``): ``FIT_STYLE`` added, so that it fits the window;

    * ``GET /api/studies``: each direction carries its objective's name (``maximize auc``), so the study list reads
      "Direction: MAXIMIZE AUC, MINIMIZE PARAMS, ..." (the list shows only directions; the study pages keep the
      true directions and name the objectives themselves);
    * ``/api/studies/<id>`` of an internal study (hidden from the list, yet holding an id, so the listed ids skip
      numbers): a 404 that says whose internal study it is and which id to open, not "not found"."""
    import json

    def names_of() -> dict[int, list[str]]:
        return {s._study_id: s.system_attrs.get(METRIC_NAMES) for s in storage.get_all_studies()}

    def answer(start_response, status: str, payload: dict) -> list[bytes]:
        body = json.dumps(payload).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    def wrapped(environ, start_response):
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        hidden = _STUDY_PATH.match(path)
        if hidden:
            study_id = int(hidden.group(1))
            listed = {s._study_id for s in storage.get_all_studies()}
            internal = {s._study_id: s.study_name for s in everything() if s._study_id not in listed}
            if study_id in internal:
                from .search.pruning import SHADOW_SUFFIX

                owner = internal[study_id].removesuffix(SHADOW_SUFFIX)
                owner_id = next((s._study_id for s in storage.get_all_studies() if s.study_name == owner), None)
                where = f"; its study '{owner}' is study {owner_id}" if owner_id is not None else ""
                return answer(start_response, "404 Not Found",
                              {"reason": f"study_id={study_id} is internal to nas-med (the pruning records of "
                                         f"'{owner}'), not a study to browse{where}."})
        page = method == "GET" and (path == "/dashboard" or path.startswith("/dashboard/"))
        if (path != "/api/studies" or method != "GET") and not page:
            return app(environ, start_response)
        captured: dict = {}

        def capture(status, headers, exc_info=None):
            captured.update(status=status, headers=headers)
            return lambda data: None

        body = b"".join(app(environ, capture))
        if page and captured.get("status", "").startswith("200") and b"</head>" in body:
            body = body.replace(b"</head>", FIT_STYLE.encode() + b"</head>", 1)
        elif captured.get("status", "").startswith("200"):
            try:
                listing = json.loads(body)
                names = names_of()
                for summary in listing.get("study_summaries", []):
                    named = names.get(summary.get("study_id"))
                    if named and len(named) == len(summary.get("directions", [])):
                        summary["directions"] = [f"{d} {n}" for d, n in zip(summary["directions"], named)]
                body = json.dumps(listing).encode()
            except (ValueError, AttributeError, TypeError) as exc:  # the list as optuna-dashboard gave it
                log.debug("study list left unnamed: %s", exc)
        headers = [(k, v) for k, v in captured.get("headers", []) if k.lower() != "content-length"]
        start_response(captured.get("status", "200 OK"), headers + [("Content-Length", str(len(body)))])
        return [body]

    return wrapped


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
    storage = open_storage(url, heartbeat=False)
    everything = storage.get_all_studies
    storage = hide_internal_studies(storage)
    folder = artifact_dir(url)
    if not folder.is_dir():
        log.warning("no artifact folder at %s: trials will show no CAM grids", folder)
    app = _named_objectives(wsgi(storage, artifact_store=FileSystemArtifactStore(str(folder))), storage, everything)
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
