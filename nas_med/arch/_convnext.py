"""The ``convnext`` block: depthwise kxk conv, norm, 1x1 MLP (ratio 4), layer scale, residual.

A change of shape happens first: stride 2 is norm + 2x2 conv with stride 2 (ConvNeXt's patchify downsampling);
stride 1 with a new width is a 1x1 conv.
"""
from __future__ import annotations

import torch
from torch import nn

from ._registry import register_block
from .layers import make_act, make_norm

DEFAULT_MLP_RATIO = 4
LAYER_SCALE_INIT = 1e-6


def _reshape(in_ch: int, out_ch: int, stride: int, norm: str) -> nn.Module:
    if stride == 2:
        return nn.Sequential(make_norm(norm, in_ch), nn.Conv2d(in_ch, out_ch, 2, 2))
    if in_ch != out_ch:
        return nn.Conv2d(in_ch, out_ch, 1)
    return nn.Identity()


class ConvNeXtBlock(nn.Module):
    """``x + gamma * mlp(norm(dwconv(x)))`` after an optional downsampling / width change."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, kernel: int, norm: str, act: str, ratio: float):
        super().__init__()
        hidden = max(1, round(out_ch * ratio))
        self.reshape = _reshape(in_ch, out_ch, stride, norm)
        self.dwconv = nn.Conv2d(out_ch, out_ch, kernel, 1, kernel // 2, groups=out_ch)
        self.norm = make_norm(norm, out_ch)
        self.mlp = nn.Sequential(nn.Conv2d(out_ch, hidden, 1), make_act(act), nn.Conv2d(hidden, out_ch, 1))
        self.gamma = nn.Parameter(torch.full((out_ch, 1, 1), LAYER_SCALE_INIT))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.reshape(x)  # (B, out_ch, H / stride, W / stride)
        return x + self.gamma * self.mlp(self.norm(self.dwconv(x)))


@register_block("convnext")
def convnext(in_ch: int, out_ch: int, stride: int, *, kernel: int = 7, norm: str = "layer", act: str = "gelu",
             expansion: float = 0) -> nn.Module:
    """ConvNeXt block: depthwise kxk conv, norm, 1x1 MLP (x expansion, default 4), layer scale, residual.

    Downsampling is norm + 2x2 conv with stride 2 (patchify); the chosen ``norm`` replaces LayerNorm.
    """
    return ConvNeXtBlock(in_ch, out_ch, stride, kernel, norm, act, expansion or DEFAULT_MLP_RATIO)
