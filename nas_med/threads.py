"""Whether a network's training is too small for torch's intra-op threads: the one measured rule behind the
search's parallel trials (``nas_med.search.parallel``) and fused training's parallel groups (``nas_med.fused``).

On a CPU a convolution over a batch of images up to 64 x 64 px splits into slices too thin to pay for the threads'
synchronisation; such work runs faster one thread per core, each core on its own share (figures in
benchmarks/README.md, ``throughput.py`` and ``fused.py``). The rule reads only the image size and the device."""
from __future__ import annotations

__all__ = ["SINGLE_THREAD_PIXELS", "single_threaded"]

SINGLE_THREAD_PIXELS = 64 * 64  # images up to this many pixels (per channel) train with one thread each


def single_threaded(size: int, device_type: str) -> bool:
    """Whether training at ``size`` x ``size`` px on ``device_type`` should run one thread per share of work."""
    return device_type == "cpu" and size * size <= SINGLE_THREAD_PIXELS
