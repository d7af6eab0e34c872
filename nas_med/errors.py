"""Errors that reach the user as one clear line (the CLI turns them into exit code 2)."""
from __future__ import annotations

import difflib
from typing import Iterable

__all__ = ["UserError", "look_up"]


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
