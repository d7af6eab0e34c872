"""Progress events from long library work to whoever listens (the CLI's displays), without the library knowing
about consoles: the search's epochs, ``confirm``'s folds, retraining seeds, export stages, sweep points.

An event is (stage, k, n, text, info): step ``k`` of ``n`` (1-based; ``k = 0`` announces a start), a short text
naming the step, and extra values (``trial``, ``val_auc``, ...). ``emit`` calls every listener registered with
``listening``; a listener that raises is dropped, so a display can never stop the work. Events may come from
several threads (fused training's parallel groups): listeners are called one event at a time.
"""
from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

__all__ = ["Event", "emit", "listening"]

log = logging.getLogger(__name__)
_lock = threading.Lock()
_calling = threading.RLock()  # one event at a time through the listeners (a listener may emit in turn)
_listeners: list[Callable[[Event], None]] = []


@dataclass(frozen=True)
class Event:
    stage: str
    k: int
    n: int
    text: str = ""
    info: dict = field(default_factory=dict)


def emit(stage: str, k: int, n: int, text: str = "", **info) -> None:
    """Tell every listener that step ``k`` of ``n`` of ``stage`` starts or ended (see the module docstring)."""
    with _lock:
        listeners = list(_listeners)
    event = Event(stage, int(k), int(n), text, info)
    with _calling:
        for listener in listeners:
            try:
                listener(event)
            except Exception as exc:  # noqa: BLE001 - a display must never stop the work it shows
                log.debug("progress listener dropped: %s", exc)
                with _lock:
                    if listener in _listeners:
                        _listeners.remove(listener)


@contextmanager
def listening(listener: Callable[[Event], None]) -> Iterator[None]:
    """Register ``listener`` for the duration of the block."""
    with _lock:
        _listeners.append(listener)
    try:
        yield
    finally:
        with _lock:
            if listener in _listeners:
                _listeners.remove(listener)
