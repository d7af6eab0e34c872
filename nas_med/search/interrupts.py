"""Ctrl-C and SIGTERM in a process that runs trials: stop now, or at the next safe point if Python lost it.

Python raises KeyboardInterrupt wherever the main thread is. Inside a weakref or ``__del__`` callback it cannot
propagate ("Exception ignored in ..."), and the worker would train on until it is killed. After ``install()``,
SIGINT and SIGTERM also record the request; ``check()`` (after every epoch and between trials) raises again while
it is pending, and an interrupt swallowed by a callback is not printed as a traceback. Between popping a queued
trial and knowing its id (``defer()`` ... ``resume()``) an interrupt only records the request, so the trial it
would strand in RUNNING is always known and re-queued.
"""
from __future__ import annotations

import logging
import signal
import sys
import threading

log = logging.getLogger(__name__)

_pending = False
_installed = False
_deferred = False


def _request(signum, frame) -> None:
    global _pending
    _pending = True
    if not _deferred:
        raise KeyboardInterrupt


def _quiet_swallowed_interrupts(previous):
    def hook(unraisable) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            log.debug("an interrupt landed in %r; stopping at the next safe point", unraisable.object)
            return
        previous(unraisable)

    return hook


def install() -> None:
    """Route SIGINT and SIGTERM (``docker stop``) through the pending-stop flag (main thread, once)."""
    global _installed
    if _installed or threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGINT, _request)
    signal.signal(signal.SIGTERM, _request)
    sys.unraisablehook = _quiet_swallowed_interrupts(sys.unraisablehook)
    _installed = True


def check() -> None:
    """Raise KeyboardInterrupt if a stop was requested and not handled yet."""
    if _pending:
        raise KeyboardInterrupt


def defer() -> None:
    """From now until ``resume()``, an interrupt is only recorded."""
    global _deferred
    _deferred = True


def resume() -> None:
    """End ``defer()``, raising KeyboardInterrupt if a stop was requested meanwhile."""
    resume_quietly()
    check()


def resume_quietly() -> None:
    """End ``defer()`` without raising (a recorded request stays pending for the next ``check()``)."""
    global _deferred
    _deferred = False


def handled() -> None:
    """The interrupt reached the code that stops the work: forget it."""
    global _pending
    _pending = False
