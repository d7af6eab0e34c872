"""Fused training's per-core groups: where one network's training is too small for torch's threads
(``nas_med.threads``: the CPU, images up to 64 px) and the process has several, the K runs are split into one
contiguous group per thread, and each group trains as its own wide network in its own Python thread with torch on
one thread (its kernels run outside the GIL), so every core is busy with its own share. The groups follow from K
and the thread count alone and each is computed on one thread, whatever the timing of the others: the same command
on the same machine gives the same numbers. Across machines with other core counts a copy may round differently
(its group's width changes how the convolution kernels block the channels), as it does with other thread counts."""
from __future__ import annotations

import threading
from typing import Callable, Sequence, TypeVar

import torch

from ..threads import single_threaded

__all__ = ["Stopped", "in_parallel_threads", "thread_groups"]

T = TypeVar("T")


class Stopped(Exception):
    """Another group failed (or the user pressed Ctrl-C): this one stops at its next step."""


def thread_groups(k: int, size: int, device: torch.device) -> list[range]:
    """The K runs split into contiguous groups, one per torch thread (at most K), where a network at ``size`` px
    is too small for the threads; else one group."""
    threads = torch.get_num_threads()
    if threads < 2 or k < 2 or not single_threaded(size, device.type):
        return [range(k)]
    n = min(threads, k)
    cuts = [round(g * k / n) for g in range(n + 1)]
    return [range(a, b) for a, b in zip(cuts, cuts[1:])]


def in_parallel_threads(jobs: Sequence[Callable[[threading.Event], T]]) -> list[T]:
    """Run each ``job(stop)`` in its own thread, torch single-threaded, and return their results in order. A job
    that raises sets ``stop`` (the others are to raise ``Stopped`` at their next step); the first error that is not
    ``Stopped`` is raised once all have ended. The process's torch threads are restored."""
    stop, outcomes = threading.Event(), [None] * len(jobs)

    def work(i: int) -> None:
        torch.set_num_threads(1)
        try:
            outcomes[i] = jobs[i](stop)
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread below
            stop.set()
            outcomes[i] = exc

    threads_before = torch.get_num_threads()
    workers = [threading.Thread(target=work, args=(i,), name=f"fused-{i}", daemon=True) for i in range(len(jobs))]
    torch.set_num_threads(1)
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    except BaseException:  # Ctrl-C: the groups stop at their next step
        stop.set()
        for worker in workers:
            if worker.is_alive():
                worker.join()
        raise
    finally:
        torch.set_num_threads(threads_before)
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    if failed:
        raise next((e for e in failed if not isinstance(e, Stopped)), failed[0])
    return outcomes
