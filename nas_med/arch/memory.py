"""Will a candidate fit? Its training memory estimated from the spec (counted on the meta device, nothing
allocated) against what the device can hold.

Estimate (float32): parameters x 4 copies (weights, gradients, Adam's two moments) + activations of one image
x batch size x 2 (the forward pass keeps them for the backward pass, which creates gradients of the same
size). It ignores workspace and fragmentation, so it errs low: only candidates that cannot possibly fit are
stopped before they are built; the rest meet the allocator, whose failure ends the trial with the reason.
"""
from __future__ import annotations

import os

import torch

__all__ = ["MemoryTooLarge", "check_fits", "device_bytes", "training_bytes"]

HEADROOM = 0.9  # share of the device's memory a candidate may plan for


class MemoryTooLarge(RuntimeError):
    """The candidate's estimated memory exceeds the device's; the message is the reason."""


def training_bytes(cost: dict, batch_size: int) -> int:
    """Estimated bytes to train a candidate of ``cost`` (``spec_cost``) at ``batch_size``."""
    return int(cost["params"]) * 4 * 4 + int(cost.get("activation_bytes", 0)) * max(1, int(batch_size)) * 2


def device_bytes(device: torch.device) -> int | None:
    """Memory a candidate can have on the device: a CUDA device's total memory; for the CPU the memory
    available now (``MemAvailable``, or what the cgroup limit leaves when lower); None when unknown (MPS)."""
    if device.type == "cuda":
        try:
            return int(torch.cuda.get_device_properties(device).total_memory)
        except (RuntimeError, AssertionError):
            return None
    if device.type != "cpu":
        return None
    found = []
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    if not found:
        try:
            found.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))
        except (ValueError, OSError, AttributeError):
            pass
    for limit_file, used_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                  ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                   "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit, used = (open(f).read().strip() for f in (limit_file, used_file))
        except OSError:
            continue
        if limit.isdigit() and used.isdigit() and int(limit) < 1 << 60:
            found.append(max(0, int(limit) - int(used)))
    return min(found) if found else None


def _gib(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB" if n >= 2**28 else f"{n / 2**20:,.1f} MiB"


def check_fits(cost: dict, batch_size: int, device: torch.device, limit: int | None = None) -> int:
    """The estimate of ``training_bytes``; MemoryTooLarge (with the numbers) when it exceeds ``limit`` (default:
    HEADROOM of ``device_bytes``)."""
    need = training_bytes(cost, batch_size)
    if limit is None:
        total = device_bytes(device)
        limit = None if total is None else int(total * HEADROOM)
    if limit is not None and need > limit:
        raise MemoryTooLarge(f"out of memory (estimated before allocating): {int(cost['params']):,} parameters and "
                             f"{_gib(int(cost.get('activation_bytes', 0)))} of activations per image at batch size "
                             f"{batch_size} need about {_gib(need)}, more than the {_gib(limit)} of {device.type} "
                             f"memory a candidate may use")
    return need
