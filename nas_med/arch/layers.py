"""Shared pieces of every block: name tables for norms and activations, and conv-norm-act."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import look_up

__all__ = ["ACTIVATIONS", "KERNELS", "NORMS", "LayerNorm2d", "conv_norm_act", "make_act", "make_norm"]

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "silu": nn.SiLU, "gelu": nn.GELU}
NORMS = ("none", "batch", "group", "layer")
KERNELS = (3, 5, 7)


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of every pixel of a (B, C, H, W) map (ConvNeXt's norm)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)  # (B, H, W, C)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)  # (B, C, H, W)


def make_act(name: str) -> nn.Module:
    """The activation called ``name`` (relu, tanh, silu, gelu)."""
    return ACTIVATIONS[look_up(name, ACTIVATIONS, "activation")]()


def make_norm(name: str, channels: int) -> nn.Module:
    """The normalization called ``name`` for ``channels`` channels.

    ``group`` uses gcd(8, channels) groups; ``layer`` normalizes each pixel over its channels; ``none`` is identity.
    """
    look_up(name, NORMS, "normalization")
    if name == "batch":
        return nn.BatchNorm2d(channels)
    if name == "group":
        return nn.GroupNorm(math.gcd(8, channels), channels)
    if name == "layer":
        return LayerNorm2d(channels, eps=1e-6)
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
