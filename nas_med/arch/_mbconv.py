"""The ``mbconv`` block: EfficientNet's inverted residual (expand, depthwise, squeeze-excite, project)."""
from __future__ import annotations

import torch
from torch import nn

from ._registry import register_block
from .layers import conv_norm_act, make_act

DEFAULT_EXPAND = 4


class SqueezeExcite(nn.Module):
    """Channel attention: global pool -> 1x1 reduce -> act -> 1x1 expand -> sigmoid gate."""

    def __init__(self, channels: int, squeezed: int, act: str):
        super().__init__()
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, squeezed, 1), make_act(act),
                                  nn.Conv2d(squeezed, channels, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)  # (B, C, H, W) * (B, C, 1, 1)


class MBConv(nn.Module):
    """in -> 1x1 expand (x expand ratio) -> kxk depthwise (strided) -> SE (in/4) -> 1x1 project (no act).

    The input is added back when the shape is unchanged (stride 1 and in_ch == out_ch).
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int, kernel: int, norm: str, act: str, expand: float):
        super().__init__()
        hidden = max(1, round(in_ch * expand))
        self.expand = conv_norm_act(in_ch, hidden, 1, 1, norm, act) if hidden != in_ch else nn.Identity()
        self.depthwise = conv_norm_act(hidden, hidden, kernel, stride, norm, act, groups=hidden)
        self.se = SqueezeExcite(hidden, max(1, in_ch // 4), act)
        self.project = conv_norm_act(hidden, out_ch, 1, 1, norm, None)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.se(self.depthwise(self.expand(x))))  # (B, out_ch, H / stride, W / stride)
        return x + y if self.residual else y


@register_block("mbconv")
def mbconv(in_ch: int, out_ch: int, stride: int, *, kernel: int = 3, norm: str = "batch", act: str = "silu",
           expansion: float = 0) -> nn.Module:
    """EfficientNet inverted residual: 1x1 expand (x expansion, default 4), depthwise kxk, squeeze-excite, 1x1."""
    return MBConv(in_ch, out_ch, stride, kernel, norm, act, expansion or DEFAULT_EXPAND)
