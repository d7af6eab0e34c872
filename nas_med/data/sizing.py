"""The default image size of a ``folder:`` dataset when ``--size`` is not given.

Rule: the median of the images' shorter sides, capped by a per-device budget (128 px on a CPU, 224 px on a
GPU), rounded *down* to a multiple of 16 (so at least half of the images are shrunk or kept, never enlarged);
folders whose median shorter side is under 32 px keep that side as it is (at least 8 px). ``--size`` always wins.
Every image is then brought to SIZE x SIZE, as before; the rule only replaces "the size of the most common
image", which made a folder of 512 px scans train at 512 px on a 2-core CPU.
"""
from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

DEVICE_BUDGET = {"cpu": 128, "cuda": 224, "mps": 224}
MULTIPLE = 16
SMALL = 32  # below this median side the images are kept at their own size


@dataclass(frozen=True)
class SizeChoice:
    """The chosen size and the one-line reason printed when a search starts."""

    size: int
    reason: str
    median_side: int
    budget: int
    upsampled: int  # images whose shorter side is below ``size`` (enlarged by the resize)
    total: int


def default_size(shapes: Sequence[tuple[int, int]], device_type: str = "cpu") -> SizeChoice:
    """The default size of images with (width, height) ``shapes`` trained on a ``device_type`` device."""
    budget = DEVICE_BUDGET.get(device_type, DEVICE_BUDGET["cpu"])
    sides = [min(w, h) for w, h in shapes if w > 0 and h > 0]
    if not sides:
        raise ValueError("no image sizes to choose a default size from")
    median = int(statistics.median_low(sides))
    if median < SMALL:
        size, how = max(8, median), f"kept (under {SMALL} px)"
    else:
        size = max(MULTIPLE * 2, (min(median, budget) // MULTIPLE) * MULTIPLE)
        how = (f"capped at the {device_type.upper()} budget of {budget} px" if median > budget
               else f"rounded down to a multiple of {MULTIPLE}")
    up = sum(s < size for s in sides)
    reason = (f"size {size} px (no --size given): median shorter image side {median} px "
              f"(range {min(sides)}-{max(sides)}), {how}; {up} of {len(sides)} images enlarged; "
              f"give --size to override")
    return SizeChoice(size, reason, median, budget, up, len(sides))


def folder_default_size(name: str, device_type: str = "cpu", cache_dir=None) -> SizeChoice | None:
    """The default size of dataset ``name`` on a device of ``device_type`` (``cpu``, ``cuda``, ``mps``) when it is
    a ``folder:`` dataset, else None (other datasets keep their native size). Reads only image headers (cached,
    see ``summary.scan_folder``)."""
    from .summary import folder_root, readable_shapes, scan_folder

    root = folder_root(name)
    if root is None:
        return None
    shapes = readable_shapes(scan_folder(root, cache_dir))
    return default_size(shapes, device_type) if shapes else None
