"""The search engine: study creation, the trial objective, pruning and workers."""
from .config import SearchConfig
from .runner import search

__all__ = ["SearchConfig", "search"]
