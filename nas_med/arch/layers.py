"""Shared pieces of every block: name tables for norms and activations, and conv-norm-act."""
from __future__ import annotations

import math

from torch import nn

from ..errors import look_up

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "silu": nn.SiLU, "gelu": nn.GELU}
NORMS = ("none", "batch", "group")
KERNELS = (3, 5, 7)


def make_act(name: str) -> nn.Module:
    return ACTIVATIONS[look_up(name, ACTIVATIONS, "activation")]()


def make_norm(name: str, channels: int) -> nn.Module:
    look_up(name, NORMS, "normalization")
    if name == "batch":
        return nn.BatchNorm2d(channels)
    if name == "group":
        return nn.GroupNorm(math.gcd(8, channels), channels)
    return nn.Identity()


def conv_norm_act(in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1, norm: str = "batch",
                  act: str | None = "relu", groups: int = 1) -> nn.Sequential:
    """Conv (bias only without norm), then norm, then activation (``act=None`` for none)."""
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups,
                                         bias=norm == "none")]
    if norm != "none":
        layers.append(make_norm(norm, out_ch))
    if act is not None:
        layers.append(make_act(act))
    return nn.Sequential(*layers)
