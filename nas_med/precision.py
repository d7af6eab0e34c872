"""Training precision: ``auto``, ``fp32``, ``bf16`` or ``fp16``, resolved per device at run time.

``auto`` picks what pays on the device at hand:

* CPU: bf16 autocast when the CPU has bf16 arithmetic (AMX-BF16 or AVX-512-BF16, read from the CPU flags), else
  fp32. Plain AVX-512 or AVX2 CPUs emulate bf16 and gain nothing.
* CUDA: bf16 autocast on GPUs that support it (Ampere and later: no loss scaling, so no host sync per step),
  fp16 autocast with a GradScaler on older GPUs.
* MPS and anything else: fp32.

Autocast changes the dtype of activations only: parameters, optimiser state and the exported weights stay fp32.

Channels-last memory format is used where it is safe and pays: on CUDA, and on CPU under bf16. torch 2.14.1's
oneDNN backward of a channels-last 1x1 stride-2 convolution corrupts the heap on CPU, in fp32 and under bf16
autocast alike (benchmarks/README.md); so on CPU, while training, such a convolution runs as a slice plus a
stride-1 convolution (``strided_pointwise_as_slices``: the same result), which ran clean.
"""
from __future__ import annotations

import contextlib
import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from .defaults import PRECISIONS
from .errors import look_up

__all__ = ["PRECISIONS", "Precision", "channels_last_safe", "safe_layout", "cpu_bf16_flags", "cpu_has_bf16", "resolve_precision",
           "strided_pointwise_as_slices"]

log = logging.getLogger(__name__)

CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Precision:
    """A resolved precision for one device: what ``train()`` needs to set up autocast and the scaler."""

    name: str  # fp32, bf16 or fp16
    device_type: str  # cpu, cuda, mps
    channels_last: bool

    @property
    def dtype(self) -> torch.dtype | None:
        return _DTYPES[self.name]

    @property
    def autocast(self) -> bool:
        return self.name != "fp32"

    @property
    def needs_scaler(self) -> bool:
        """fp16 gradients underflow without loss scaling; bf16 has fp32's exponent range and needs none."""
        return self.name == "fp16"

    def context(self):
        """The autocast context for forward and loss (a no-op for fp32)."""
        return torch.autocast(self.device_type, dtype=self.dtype or torch.float32, enabled=self.autocast)


@functools.lru_cache(maxsize=1)
def cpu_bf16_flags() -> tuple[str, ...]:
    """The bf16 CPU flags present (``amx_bf16``, ``avx512_bf16``), from /proc/cpuinfo; on other systems, AMX
    when torch's own CPU capability says so."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return tuple(f for f in CPU_BF16_FLAGS if f in flags)
    capability = str(torch.backends.cpu.get_cpu_capability()).upper()
    return ("amx_bf16",) if "AMX" in capability else ()


def cpu_has_bf16() -> bool:
    """True when this CPU computes bf16 natively (AMX-BF16 or AVX-512-BF16)."""
    return bool(cpu_bf16_flags())


def _cuda_bf16(device: torch.device) -> bool:
    try:
        index = device.index if device.index is not None else torch.cuda.current_device()
        return torch.cuda.get_device_capability(index)[0] >= 8 and torch.cuda.is_bf16_supported()
    except (RuntimeError, AssertionError):  # pragma: no cover - no usable CUDA
        return False


def resolve_precision(name: str, device: torch.device | str) -> Precision:
    """``name`` (one of PRECISIONS; anything else raises UserError) resolved for ``device``."""
    look_up(name, PRECISIONS, "precision")
    device = torch.device(device)
    kind = device.type
    if name == "auto":
        if kind == "cpu":
            name = "bf16" if cpu_has_bf16() else "fp32"
        elif kind == "cuda":
            name = "bf16" if _cuda_bf16(device) else "fp16"
        else:
            name = "fp32"
    elif kind == "cpu" and name == "bf16" and not cpu_has_bf16():
        log.warning("--precision bf16 on a CPU without AMX-BF16 or AVX-512-BF16: bf16 is emulated and slower "
                    "than fp32")
    # on CPU only bf16 gains from channels-last; train() rewrites strided 1x1 convs first (``channels_last_safe``)
    channels_last = kind == "cuda" or (kind == "cpu" and name == "bf16")
    return Precision(name, kind, channels_last)


def _strided_pointwise(model: torch.nn.Module) -> list[torch.nn.Conv2d]:
    return [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and tuple(m.kernel_size) == (1, 1)
            and tuple(m.stride) != (1, 1)]


@contextlib.contextmanager
def strided_pointwise_as_slices(model: torch.nn.Module):
    """For the duration, every strided 1x1 convolution of ``model`` (padding 0) runs as ``x[:, :, ::s, ::s]`` then
    the same convolution with stride 1: the same result, without the oneDNN strided 1x1 channels-last backward
    that corrupts the heap (benchmarks/README.md). Weights and state dict are untouched."""
    changed = []
    try:
        for conv in _strided_pointwise(model):
            if tuple(conv.padding) != (0, 0) or conv.padding_mode != "zeros":
                continue
            stride = tuple(conv.stride)

            def subsample(module, args, s=stride):
                return (args[0][:, :, ::s[0], ::s[1]], *args[1:])

            handle = conv.register_forward_pre_hook(subsample)
            conv.stride = (1, 1)
            changed.append((conv, stride, handle))
        yield len(changed)
    finally:
        for conv, stride, handle in changed:
            handle.remove()
            conv.stride = stride


def channels_last_safe(model: torch.nn.Module, device: torch.device | str) -> bool:
    """False on CPU for a model holding a strided 1x1 convolution (a ResNet projection shortcut): the oneDNN
    backward of that conv in channels-last corrupts the heap in torch 2.14.1, in fp32 and under bf16 autocast
    alike (benchmarks/README.md). Any model is safe on other devices."""
    if torch.device(device).type != "cpu":
        return True
    return not _strided_pointwise(model)


def safe_layout(model: torch.nn.Module, device: torch.device, channels_last: bool,
                rewrites: contextlib.ExitStack) -> tuple[torch.nn.Module, bool]:
    """(``model``, whether it trains channels-last) once made safe to train: on CPU a strided 1x1 conv must not run
    its channels-last backward (oneDNN heap corruption), so within ``rewrites`` it runs as a slice + a stride-1 conv
    (the same result); one that cannot be rewritten (padding) makes the model train contiguous."""
    if channels_last and not channels_last_safe(model, device):
        rewrites.enter_context(strided_pointwise_as_slices(model))
        if not channels_last_safe(model, device):
            return model.to(memory_format=torch.contiguous_format), False
    return model, channels_last
