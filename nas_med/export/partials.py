"""The temporary folders an export writes into beside its target (``.<name>.partial-<host>-<pid>-*``), and the
removal of those that killed exports left behind."""
from __future__ import annotations

from pathlib import Path

__all__ = ["STALE_HOURS", "clean_stale_partials", "partial_prefix"]

STALE_HOURS = 24.0  # a temporary export folder older than this is stale whoever made it


def partial_prefix(out: Path) -> str:
    """The name prefix of ``out``'s temporary folder: ``.<name>.partial-<host>-<pid>-`` (who is writing it)."""
    import os
    import socket

    host = "".join(c if c.isalnum() or c in "._" else "_" for c in socket.gethostname()) or "host"
    return f".{out.name}.partial-{host}-{os.getpid()}-"


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def clean_stale_partials(out: Path, hours: float = STALE_HOURS) -> list[Path]:
    """Remove the temporary folders that killed exports to ``out`` left beside it (``.<name>.partial-*``):
    those made on this host by a process that is gone, and any older than ``hours``; returns what was removed.
    A failure to remove one is ignored (the export itself goes on)."""
    import logging
    import re
    import shutil
    import socket
    import time

    parent = out.absolute().parent
    if not parent.is_dir():
        return []
    host = "".join(c if c.isalnum() or c in "._" else "_" for c in socket.gethostname()) or "host"
    pattern = re.compile(re.escape(f".{out.name}.") + r"(?:partial-(?:(?P<host>[\w.]+)-(?P<pid>\d+)-)?|old-)")
    removed = []
    try:
        candidates = [p for p in parent.iterdir() if pattern.match(p.name) and p.is_dir() and not p.is_symlink()]
    except OSError:
        return []
    for path in candidates:
        match = pattern.match(path.name)
        try:
            age_h = (time.time() - path.stat().st_mtime) / 3600
        except OSError:
            continue
        dead = match["pid"] is not None and match["host"] == host and not _alive(int(match["pid"]))
        if dead or age_h > hours:
            shutil.rmtree(path, ignore_errors=True)
            if not path.exists():
                removed.append(path)
    if removed:
        logging.getLogger(__name__).warning("removed %d stale temporary export folder(s) of killed exports "
                                            "(first: '%s')", len(removed), removed[0])
    return removed
