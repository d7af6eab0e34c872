"""Study storage: sqlite under studies/ by default, any SQLAlchemy URL, or a journal file; passwords masked."""
from __future__ import annotations

import os
import re
from pathlib import Path

import optuna

from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend

from ..errors import UserError

DEFAULT_STORAGE = "sqlite:///studies/nas-med.db"
JOURNAL_SUFFIXES = (".log", ".journal", ".jsonl")


def mask_url(url: str) -> str:
    """The URL with any password replaced by ***, safe to print."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", str(url))


def is_journal(url: str) -> bool:
    return str(url).endswith(JOURNAL_SUFFIXES) and "://" not in str(url)


def artifact_dir(url: str) -> Path:
    """Where a study's artifacts (CAM grids, notes) live: beside a file storage, else under studies/."""
    url = str(url)
    if url.startswith("sqlite:///"):
        db = Path(url[len("sqlite:///"):])
        return db.parent / f"{db.stem}-artifacts"
    if is_journal(url):
        return Path(url).parent / f"{Path(url).stem}-artifacts"
    return Path("studies") / "artifacts"


def open_storage(url: str | None = None, heartbeat: bool = True) -> optuna.storages.BaseStorage:
    """Open (and create when needed) the storage at ``url``. Bad URLs raise UserError with the masked URL."""
    url = str(url or DEFAULT_STORAGE)
    if is_journal(url):
        Path(url).parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(url))
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
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    elif url.startswith("postgresql"):
        kwargs["engine_kwargs"] = {"pool_pre_ping": True}
    if heartbeat:
        seconds = int(os.environ.get("NAS_MED_HEARTBEAT_SECONDS", "30"))
        kwargs.update(heartbeat_interval=seconds, grace_period=2 * seconds,
                      heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=2))
    try:
        return RDBStorage(url, **kwargs)
    except ImportError as exc:
        raise UserError(f"storage '{mask_url(url)}' needs a driver that is not installed ({exc.name}); "
                        "for PostgreSQL: pip install 'nas-med[postgres]'.") from None
    except Exception as exc:  # SQLAlchemy/driver errors: bad URL, refused connection, bad password
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot open storage '{mask_url(url)}': {mask_url(first)}") from None
