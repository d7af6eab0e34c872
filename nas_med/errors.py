"""Errors that reach the user as one clear line (the CLI turns them into exit code 2)."""
from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Iterable

import yaml

__all__ = ["NumberLoader", "UserError", "disk_full", "look_up", "read_text_limited"]


class UserError(ValueError):
    """Bad input from the user: an argument, a path, a dataset, a search-space file, a storage URL."""


def look_up(name: str, options: Iterable[str], what: str) -> str:
    """Return ``name`` if it is one of ``options``; otherwise raise UserError listing them, with a did-you-mean."""
    options = list(options)
    if name in options:
        return name
    close = difflib.get_close_matches(str(name), options, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    raise UserError(f"unknown {what} '{name}'.{hint} Valid: {', '.join(sorted(options))}.")


def read_text_limited(path: Path, limit: int, what: str) -> str:
    """The text of ``path`` if it holds at most ``limit`` bytes; UserError naming ``what`` (e.g. "search space file
    'x.yaml'") when it is larger or cannot be read as UTF-8 text."""
    try:
        size = path.stat().st_size
        if size > limit:
            raise UserError(f"{what} is {size} bytes; at most {limit} are allowed.")
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {what}: {getattr(exc, 'strerror', None) or exc}.") from None


class NumberLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader reading ``1e-3`` (no dot: a string in YAML 1.1) as the float YAML 1.2 and the command
    line read, so a number means the same in a search space, a recipe file and an option."""


NumberLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789"))


def disk_full(exc: BaseException, what: str = "", note: str = "") -> UserError | None:
    """A write that failed for want of space (a full disk, a quota, a file too large) as one UserError naming
    ``what`` (e.g. "--out 'model'") and the file, ``note`` appended; None for any other error."""
    import errno

    if not isinstance(exc, OSError) or exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return None
    where = f"'{exc.filename}'" if exc.filename else "a file"
    target = f"cannot write {what}" if what else f"cannot write {where}"
    detail = f" (while writing {where})" if what and exc.filename else ""
    return UserError(f"{target}: {exc.strerror or 'no space left on device'}{detail}{note}.")
