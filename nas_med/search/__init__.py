"""The search engine: study creation, the trial objective, pruning and workers."""
from __future__ import annotations

__all__ = ["SearchConfig", "search"]


def __getattr__(name: str):  # lazy, so that the CLI starts without importing torch for `--help`
    if name == "SearchConfig":
        from .config import SearchConfig

        return SearchConfig
    if name == "search":
        from .runner import search

        return search
    raise AttributeError(name)
