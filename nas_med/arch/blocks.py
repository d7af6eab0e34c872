"""The classic block types; the modern ones live in ``_convnext``, ``_dense`` and ``_mbconv``. Every block has
one signature ``(in_ch, out_ch, stride, *, kernel, norm, act, expansion)``: ``stride`` is 1 or 2 (2 halves the map),
``expansion`` is block-specific and 0 means the block's default.

| block | what | ``expansion`` |
|---|---|---|
| simple | conv-norm-act, 2x2 max pool (miniCNN) | unused |
| double | two conv-norm-act, 2x2 max pool (U-Net encoder) | unused |
| basic | ResNet basic block | unused |
| bottleneck | ResNet bottleneck, inner width ``out_ch / expansion`` | reduction, default 4 |
| dense | DenseNet unit: dense layers + transition | growth rate, default ``out_ch // 4`` |
| mbconv | EfficientNet inverted residual with squeeze-excitation | expand ratio, default 4 |
| convnext | ConvNeXt block with layer scale | MLP ratio, default 4 |
"""
from __future__ import annotations

import torch
from torch import nn

from ._registry import register_block
from .layers import conv_norm_act, make_act

__all__ = ["basic", "bottleneck", "double", "simple"]


def _pool(stride: int) -> nn.Module:
    return nn.MaxPool2d(2) if stride == 2 else nn.Identity()


@register_block("simple")
def simple(in_ch: int, out_ch: int, stride: int, *, kernel: int = 3, norm: str = "none", act: str = "relu",
           expansion: float = 0) -> nn.Module:
    """Conv + (norm) + activation + 2x2 max pool: the miniCNN / LeNet block."""
    return nn.Sequential(conv_norm_act(in_ch, out_ch, kernel, 1, norm, act), _pool(stride))


@register_block("double")
def double(in_ch: int, out_ch: int, stride: int, *, kernel: int = 3, norm: str = "none", act: str = "relu",
           expansion: float = 0) -> nn.Module:
    """Two conv + activation, then 2x2 max pool: the U-Net encoder block."""
    return nn.Sequential(conv_norm_act(in_ch, out_ch, kernel, 1, norm, act),
                         conv_norm_act(out_ch, out_ch, kernel, 1, norm, act), _pool(stride))


class Residual(nn.Module):
    """``act(body(x) + shortcut(x))``; the shortcut is a strided 1x1 conv + norm when the shape changes."""

    def __init__(self, body: nn.Module, in_ch: int, out_ch: int, stride: int, norm: str, act: str | None):
        super().__init__()
        self.body = body
        self.shortcut = (nn.Identity() if stride == 1 and in_ch == out_ch
                         else conv_norm_act(in_ch, out_ch, 1, stride, norm, None))
        self.act = make_act(act) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))  # (B, out_ch, H / stride, W / stride)


@register_block("basic")
def basic(in_ch: int, out_ch: int, stride: int, *, kernel: int = 3, norm: str = "batch", act: str = "relu",
          expansion: float = 0) -> nn.Module:
    """ResNet basic block: two conv-norm (the first strided) with an identity or projection shortcut."""
    body = nn.Sequential(conv_norm_act(in_ch, out_ch, kernel, stride, norm, act),
                         conv_norm_act(out_ch, out_ch, kernel, 1, norm, None))
    return Residual(body, in_ch, out_ch, stride, norm, act)


@register_block("bottleneck")
def bottleneck(in_ch: int, out_ch: int, stride: int, *, kernel: int = 3, norm: str = "batch", act: str = "relu",
               expansion: float = 0) -> nn.Module:
    """ResNet-50 bottleneck: 1x1 reduce to out_ch/expansion, kxk (strided), 1x1 expand, projection shortcut."""
    mid = max(1, int(out_ch // (expansion or 4)))
    body = nn.Sequential(conv_norm_act(in_ch, mid, 1, 1, norm, act),
                         conv_norm_act(mid, mid, kernel, stride, norm, act),
                         conv_norm_act(mid, out_ch, 1, 1, norm, None))
    return Residual(body, in_ch, out_ch, stride, norm, act)
