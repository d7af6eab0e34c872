"""On-disk cache: where nas-med keeps downloaded files and prepared uint8 tensors.

The root is ``cache_dir`` when given, else ``$NAS_MED_CACHE``, else ``~/.cache/nas-med``; MedMNIST files go to
``<root>/medmnist`` and prepared tensors to ``<root>/prepared``. Entries are plain dicts of tensors and plain
values written with ``torch.save`` (temp file + ``os.replace``, so a reader never sees half a file) and read back
with ``torch.load(weights_only=True)`` (no pickled code). A key is the SHA-256 of everything that determines
the content, so a stale entry is never hit; entries are never deleted by nas-med (remove the folder to reclaim).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

ENV_VAR = "NAS_MED_CACHE"
FORMAT_VERSION = 1


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """The cache root: ``cache_dir``, else ``$NAS_MED_CACHE``, else ``~/.cache/nas-med``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    return Path.home() / ".cache" / "nas-med"


def file_fingerprint(paths: Iterable[Path]) -> list[list]:
    """``[path, size, mtime_ns]`` per file (size -1 for a file that cannot be stat'ed): changes when a file does."""
    out = []
    for path in paths:
        try:
            st = os.stat(path)
            out.append([str(path), st.st_size, st.st_mtime_ns])
        except OSError:
            out.append([str(path), -1, 0])
    return out


def make_key(**parts: Any) -> str:
    """SHA-256 of the JSON form of ``parts`` (plain values only)."""
    text = json.dumps({"format": FORMAT_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def entry_path(key: str, kind: str, cache_dir: str | Path | None = None) -> Path:
    """Where the prepared-tensor entry ``key`` of ``kind`` (e.g. ``folder``) lives."""
    return cache_root(cache_dir) / "prepared" / f"{kind}-{key[:40]}.pt"


def atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    """Call ``write(fileobj)`` on a temp file next to ``path``, then move it over ``path`` in one step."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")  # mode follows the umask
    try:
        with open(tmp, "xb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save(path: Path, payload: dict) -> None:
    """Write ``payload`` (tensors and plain values) to ``path`` atomically; a failure only logs a warning."""
    try:
        atomic_write(path, lambda fh: torch.save(payload, fh))
    except OSError as exc:
        log.warning("could not write cache entry '%s': %s", path, exc)


def load(path: Path) -> dict | None:
    """The entry at ``path``, or None when absent or unreadable (a corrupt entry is logged and ignored)."""
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable entry is a cache miss
        log.warning("ignoring unreadable cache entry '%s': %s", path, exc)
        return None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
        log.warning("ignoring cache entry '%s' of an unknown format", path)
        return None
    return payload


def cached(key: str, kind: str, cache_dir: str | Path | None, compute: Callable[[], dict]) -> dict:
    """The entry ``key`` from the cache, or ``compute()`` written to the cache and returned."""
    path = entry_path(key, kind, cache_dir)
    payload = load(path)
    if payload is not None:
        log.info("read prepared tensors from cache '%s'", path)
        return payload
    payload = {"format": FORMAT_VERSION, **compute()}
    save(path, payload)
    return payload
