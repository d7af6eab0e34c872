"""Study storage: sqlite under studies/ by default, any SQLAlchemy URL, or a journal file; passwords masked.

RDB storages record a heartbeat for every running trial (``NAS_MED_HEARTBEAT_SECONDS``, default 30; 0 turns it
off): a trial whose worker died (SIGKILL, lost machine) is failed after twice that time without a heartbeat and
re-queued as a WAITING copy with the same parameters, which the next worker runs.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
from pathlib import Path

import optuna
from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from ..errors import UserError
from . import records
from ._optuna_private import set_user_attrs_in_one_commit, storage_of
from .names import DEFAULT_STORAGE

log = logging.getLogger(__name__)

JOURNAL_SUFFIXES = (".log", ".journal", ".jsonl")
HEARTBEAT_ENV = "NAS_MED_HEARTBEAT_SECONDS"
MAX_RETRY = 2
SQLITE_TIMEOUT = 60  # seconds a writer waits for the sqlite lock before "database is locked"


def mask_url(url: str) -> str:
    """The URL (or a message quoting one) with any password replaced by ***, safe to print."""
    return re.sub(r"(://[^:/@\s]+):[^\s/]*@", r"\1:***@", str(url))


def is_journal(url: str) -> bool:
    return str(url).endswith(JOURNAL_SUFFIXES) and "://" not in str(url)


def in_memory(url: str) -> bool:
    """Whether ``url`` names an SQLite database that lives only in this process (``sqlite://``,
    ``sqlite:///:memory:``, ``?mode=memory``)."""
    url = str(url)
    if not url.startswith("sqlite:"):
        return False
    path = url[len("sqlite:"):].split("?", 1)[0]
    return path.lstrip("/") in ("", ":memory:") or "mode=memory" in url or path.startswith("file::memory:")


def artifact_dir(url: str) -> Path:
    """Where a study's artifacts (CAM grids, notes) live: beside a file storage, else under studies/."""
    url = str(url)
    if url.startswith("sqlite:///"):
        db = Path(url[len("sqlite:///"):])
        return db.parent / f"{db.stem}-artifacts"
    if is_journal(url):
        return Path(url).parent / f"{Path(url).stem}-artifacts"
    return Path("studies") / "artifacts"


def heartbeat_seconds() -> int:
    """The heartbeat interval from ``NAS_MED_HEARTBEAT_SECONDS`` (default 30; 0 = no heartbeat)."""
    raw = os.environ.get(HEARTBEAT_ENV, "30").strip()
    try:
        seconds = int(raw)
    except ValueError:
        seconds = -1
    if seconds < 0:
        raise UserError(f"{HEARTBEAT_ENV} must be a whole number of seconds >= 0, got '{raw}'.")
    return seconds


class RetryStaleTrial(RetryHeartbeatStaleTrialCallback):
    """Re-queue a heartbeat-stale trial (same parameters and user attrs, so it stays ``queued``) and close the
    shadow pruning trial it left running."""

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        before = len(study.get_trials(deepcopy=False))
        super().__call__(study, trial)
        trials = study.get_trials(deepcopy=False)
        if len(trials) > before:
            log.warning("trial %d of study '%s' lost its worker (no heartbeat); re-queued as trial %d",
                        trial.number, study.study_name, trials[-1].number)
        else:
            log.warning("trial %d of study '%s' lost its worker (no heartbeat) and was retried %d times already; "
                        "not re-queued", trial.number, study.study_name, self._max_retry)
        close_shadow_trial(study, trial)


def set_user_attrs(trial: optuna.Trial, attrs: dict) -> None:
    """Set several user attrs of a running ``trial`` in one transaction (``trial.set_user_attr`` commits each
    key on its own: ~3 ms apiece in sqlite). Storages other than RDB get them one by one."""
    if not attrs or set_user_attrs_in_one_commit(trial, attrs):
        return
    for key, value in attrs.items():
        trial.set_user_attr(key, value)


def close_shadow_trial(study: optuna.Study, trial: FrozenTrial) -> None:
    """Fail the shadow pruning trial of ``trial`` if it is still running (best effort)."""
    number = trial.user_attrs.get(records.SHADOW_TRIAL)
    if number is None:
        return
    storage = storage_of(study)
    try:
        shadow_id = storage.get_study_id_from_name(study.study_name + ":pruning")
        trial_id = storage.get_trial_id_from_study_id_trial_number(shadow_id, int(number))
        if storage.get_trial(trial_id).state == TrialState.RUNNING:
            storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
    except Exception as exc:  # noqa: BLE001 - the shadow study only guides pruning
        log.debug("shadow trial %s of trial %d not closed: %s", number, trial.number, exc)


def check_journal(path: Path) -> None:
    """Repair or refuse a journal file before Optuna replays it. A last record cut off (a kill or a full disk
    mid-write: no final newline) was never applied; it is cut away, under the journal's own writer lock, with a
    warning. A record that is not JSON before the last one (a torn record that later writes followed) cannot be
    repaired: UserError naming the file and the line."""
    import json

    from optuna.storages.journal import JournalFileSymlinkLock

    lock = JournalFileSymlinkLock(str(path))
    lock.acquire()
    try:
        with open(path, "rb+") as fh:
            data = fh.read()
            if data and not data.endswith(b"\n"):
                keep = data.rfind(b"\n") + 1
                fh.truncate(keep)
                log.warning("journal storage '%s': removed its last record, cut off mid-write (%d bytes; a kill or a "
                            "full disk); it had not been applied", path, len(data) - keep)
                data = data[:keep]
    finally:
        lock.release()
    for number, line in enumerate(data.splitlines(), 1):
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            raise UserError(f"journal storage '{path}' is corrupt at line {number} (not a JSON record: "
                            f"{line[:60]!r}...); later records follow it, so it cannot be repaired. Restore the "
                            "file from a copy, or delete that line (what it recorded is lost).")


def _missing_driver(url: str, exc: ImportError) -> str:
    """The name of the driver module that failed to import (Optuna re-raises without the name)."""
    cause = exc.__cause__ or exc.__context__
    name = exc.name or getattr(cause, "name", None)
    if name:
        return name.split(".")[0]
    scheme = url.split("://", 1)[0]
    return scheme.split("+", 1)[1] if "+" in scheme else scheme


def _driver_hint(missing: str) -> str:
    if missing == "psycopg2":
        return ("write the URL as postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB (psycopg 3: "
                "pip install 'nas-med[postgres]').")
    if "psycopg" in missing or missing.startswith("postgres"):
        return "for PostgreSQL: pip install 'nas-med[postgres]'."
    return "install the driver the URL names."


# (fragment of the driver's message, lower case) -> the cause in words
STORAGE_CAUSES = (
    ("readonly database", "it is read-only (the database file or its folder cannot be written)"),
    ("read-only file system", "it is on a read-only file system"),
    ("database is locked", "it is locked by another process (a long write, or a crashed writer on a network "
                           "file system)"),
    ("database table is locked", "it is locked by another process"),
    ("disk is full", "its disk is full"),
    ("no space left", "its disk is full"),
    ("disk quota exceeded", "its disk quota is exceeded"),
    ("disk i/o error", "the disk reported an I/O error"),
    ("file is not a database", "the file is not an SQLite database"),
    ("database disk image is malformed", "the database file is corrupt"),
    ("no such table", "its tables are not Optuna's (wrong schema)"),
    ("has no column named", "its schema is not the one this Optuna version expects (wrong schema version)"),
    ("no such column", "its schema is not the one this Optuna version expects (wrong schema version)"),
    ("compatible with the table schema", "its schema version does not match this Optuna version"),
    ("alembic", "its schema version is unknown to this Optuna version"),
)
_OPENED: list[str] = []  # the URLs opened by this process, newest last (for storage_failure)
_CREATED: list[Path] = []  # storage files this process created (for discard_new)


def forget_created() -> None:
    """Start a new command: the files created so far are no longer this command's to discard."""
    _CREATED.clear()


def discard_new() -> list[Path]:
    """Remove the storage files this process created in which no trial finished (what a start that failed, e.g.
    on a full disk, left behind: a partial schema, an empty or torn journal), with their side files and an empty
    artifacts folder; returns what was removed. A file in which any trial finished is kept."""
    removed = []
    for path in list(_CREATED):
        try:
            finished = _finished_trials(path)
        except Exception:  # noqa: BLE001 - unreadable: a partial file
            finished = 0
        if finished:
            continue
        for side in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal", ".lock"))):
            try:
                side.unlink(missing_ok=True)
            except OSError:
                continue
        try:
            (path.parent / f"{path.stem}-artifacts").rmdir()
        except OSError:
            pass
        _CREATED.remove(path)
        removed.append(path)
    return removed


def _finished_trials(path: Path) -> int:
    """How many trials in the storage file ``path`` (sqlite or journal) reached COMPLETE, PRUNED or FAIL."""
    if not path.is_file() or path.stat().st_size == 0:
        return 0
    if is_journal(str(path)):
        import json

        count = 0
        for line in path.read_bytes().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            count += isinstance(record, dict) and record.get("op_code") == 6 and record.get("state") in (1, 2, 3)
        return count
    import sqlite3

    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as con:
        try:
            return con.execute("select count(*) from trials where state in ('COMPLETE', 'PRUNED', 'FAIL')"
                               ).fetchone()[0]
        except sqlite3.Error:
            return 0


def storage_failure(exc: BaseException, url: str | None = None) -> UserError | None:
    """A storage error raised after (or while) opening the storage, as one UserError naming the storage (password
    masked) and the cause; None when ``exc`` (or what caused it) is not a storage error this knows."""
    seen: list[BaseException] = []
    while exc is not None and len(seen) < 8 and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    found = [f for f in (_one_failure(e, url) for e in seen) if f is not None]
    named = [f for f in found if "refused the operation" not in str(f)]
    return (named or found or [None])[0]


def _one_failure(exc: BaseException, url: str | None) -> UserError | None:
    from optuna.exceptions import StorageInternalError
    from sqlalchemy.exc import SQLAlchemyError

    if isinstance(exc, StorageInternalError) and exc.__cause__ is None and exc.__context__ is None:
        exc = RuntimeError(str(exc))  # (its cause carries the detail when present)
    elif isinstance(exc, StorageInternalError):
        return None

    if isinstance(exc, OSError):  # only a write to the storage's own file (a journal) is a storage failure
        opened = url or (_OPENED[-1] if _OPENED else "")
        path = opened[len("sqlite:///"):] if opened.startswith("sqlite:///") else opened
        import errno

        nameless = exc.filename is None and exc.errno in (errno.ENOSPC, errno.EDQUOT) and is_journal(opened)
        if not path or not (exc.filename or nameless) or (exc.filename and
                                                         Path(str(exc.filename)).name != Path(path).name):
            return None
    known = isinstance(exc, (SQLAlchemyError, OSError)) or (
        isinstance(exc, RuntimeError) and "table schema" in str(exc))
    if not known:
        import sqlite3

        known = isinstance(exc, sqlite3.Error)
    if not known:
        return None
    text = str(getattr(exc, "orig", None) or exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    low = text.lower()
    cause = next((c for fragment, c in STORAGE_CAUSES if fragment in low), None)
    if cause is None:
        if isinstance(exc, OSError):
            return None  # not a storage failure this can name (the caller's own message applies)
        cause = "the database refused the operation"
    where = mask_url(url or (_OPENED[-1] if _OPENED else DEFAULT_STORAGE))
    return UserError(f"cannot use storage '{where}': {cause} ({mask_url(first)[:300]}).")


def open_storage(url: str | None = None, heartbeat: bool = True, create: bool = True) -> optuna.storages.BaseStorage:
    """Open the storage at ``url`` (a missing sqlite or journal file is created only when ``create``). Bad URLs
    raise UserError with the masked URL."""
    url = str(url or DEFAULT_STORAGE)
    if in_memory(url):
        raise UserError(f"storage '{mask_url(url)}' is an in-memory database: a study there is lost when the command "
                        "ends and no worker can reach it; give a file, e.g. sqlite:///studies/nas-med.db.")
    if not create and (is_journal(url) or url.startswith("sqlite:///")):
        path = Path(url[len("sqlite:///"):] if url.startswith("sqlite:///") else url)
        if not path.is_file():
            raise UserError(f"storage '{url}' does not exist (no file {path}).")
    if is_journal(url):
        try:
            Path(url).parent.mkdir(parents=True, exist_ok=True)
            if Path(url).is_file():
                check_journal(Path(url))
            else:
                _CREATED.append(Path(url))
            storage = JournalStorage(JournalFileBackend(url))
            _OPENED.append(url)
            return storage
        except OSError as exc:
            raise UserError(f"cannot open the journal storage '{url}': {exc.strerror or exc}.") from None
    if "://" not in url:
        raise UserError(f"storage '{mask_url(url)}' is neither a SQLAlchemy URL (sqlite:///..., "
                        "postgresql+psycopg://...) nor a journal file (*.log, *.journal).")
    kwargs: dict = {}
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create the folder of storage '{url}': {exc.strerror}.") from None
        if path.parent.is_dir() and not os.access(path.parent, os.W_OK):
            raise UserError(f"the folder of storage '{url}' is not writable.")
        if create and path.is_file() and not os.access(path, os.W_OK):
            raise UserError(f"cannot use storage '{url}': it is read-only (the file {path} is not writable).")
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": SQLITE_TIMEOUT}}
    elif url.startswith("postgres"):
        kwargs["engine_kwargs"] = {"pool_pre_ping": True}
    seconds = heartbeat_seconds() if heartbeat else 0
    if seconds:
        kwargs.update(heartbeat_interval=seconds, grace_period=2 * seconds,
                      heartbeat_stale_trial_callback=RetryStaleTrial(max_retry=MAX_RETRY))
    try:
        with _creating(url):
            storage = RDBStorage(url, **kwargs)
    except ImportError as exc:
        missing = _missing_driver(url, exc)
        raise UserError(f"storage '{mask_url(url)}' needs a database driver that is not installed ({missing}); "
                        f"{_driver_hint(missing)}") from None
    except Exception as exc:  # SQLAlchemy/driver errors: bad URL, refused connection, bad password
        known = storage_failure(exc, url)
        if known is not None and "refused the operation" not in str(known):
            raise known from None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot open storage '{mask_url(url)}': {mask_url(first)}") from None
    if url.startswith("sqlite:///"):
        _use_wal(storage)
    _OPENED.append(url)
    return storage


@contextlib.contextmanager
def _creating(url: str):
    """Around opening an SQLite storage: an exclusive ``flock`` on its file, so that two processes starting at
    the same moment on a new file do not both create Optuna's tables (the second would fail on the schema
    version row); sqlite's own locks are ``fcntl`` locks, which this does not touch. A file this made and could
    not open is removed again."""
    path = Path(url[len("sqlite:///"):].split("?", 1)[0]) if url.startswith("sqlite:///") else None
    try:
        import fcntl
    except ImportError:  # (Windows: no flock; the race stays possible there)
        fcntl = None
    if path is None or fcntl is None:
        yield
        return
    existed = path.exists()
    if not existed:
        _CREATED.append(path)
    try:
        fh = open(path, "ab")  # noqa: SIM115 - held for the whole block
    except OSError:
        yield  # RDBStorage names the problem
        return
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        yield
    except BaseException:
        if not existed and path.is_file() and path.stat().st_size == 0:
            path.unlink(missing_ok=True)
        raise
    finally:
        fh.close()  # releases the lock


def _use_wal(storage: RDBStorage) -> None:
    """Make sqlite safe for several worker processes.

    pysqlite starts a transaction only at the first write, so Optuna's read-then-update of a WAITING trial can
    hand the same queued trial to two workers. Every transaction here starts with BEGIN IMMEDIATE instead (the
    SQLAlchemy recipe), which serialises them; write-ahead logging keeps readers from blocking the writer.
    """
    from sqlalchemy import event

    engine = storage.engine

    @event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin_immediate(conn) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # pooled connections opened before the listeners existed
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
    except Exception as exc:  # e.g. a file system without shared memory: keep the default journal
        log.debug("sqlite WAL not enabled: %s", exc)
