"""A storage's own files: the lock under which a new sqlite file gets its schema, in-memory URLs, torn journal
records, and the files a failed command created (removed again so that nothing partial is left)."""
from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from ..errors import UserError

__all__ = ["JOURNAL_SUFFIXES", "check_journal", "created", "creating", "discard_new", "forget_created",
           "in_memory", "is_journal"]

log = logging.getLogger(__name__)

JOURNAL_SUFFIXES = (".log", ".journal", ".jsonl")


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


_CREATED: list[Path] = []  # storage files this process created (for discard_new)


def created(path: Path) -> None:
    """Note that this command created the storage file ``path``."""
    _CREATED.append(path)


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


@contextlib.contextmanager
def creating(url: str):
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
        created(path)
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
