"""The ``dense`` block: a DenseNet unit (dense layers that concatenate, then a transition).

Mapping to the block signature: ``out_ch`` is the width after the transition; ``expansion`` is the growth rate
k in channels (0 means ``max(1, out_ch // 4)``, so the four layers add ``out_ch`` channels before the
transition compresses ``in_ch + 4k`` back to ``out_ch``). Each unit has ``DENSE_LAYERS`` layers; a stage of
depth d stacks d units. Stride 2 ends the transition with a 2x2 average pool, as in DenseNet.
"""
from __future__ import annotations

import torch
from torch import nn

from ._registry import register_block
from .layers import make_act, make_norm

DENSE_LAYERS = 4


def _pre_act_conv(in_ch: int, out_ch: int, kernel: int, norm: str, act: str) -> nn.Sequential:
    """norm -> act -> conv (DenseNet's pre-activation order)."""
    return nn.Sequential(make_norm(norm, in_ch), make_act(act),
                         nn.Conv2d(in_ch, out_ch, kernel, 1, kernel // 2, bias=norm == "none"))


class DenseLayer(nn.Module):
    """Bottleneck dense layer: 1x1 conv to 4k, kxk conv to k, output concatenated to the input."""

    def __init__(self, in_ch: int, growth: int, kernel: int, norm: str, act: str):
        super().__init__()
        self.body = nn.Sequential(_pre_act_conv(in_ch, 4 * growth, 1, norm, act),
                                  _pre_act_conv(4 * growth, growth, kernel, norm, act))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.body(x)], dim=1)  # (B, C + k, H, W)


def growth_rate(out_ch: int, expansion: float) -> int:
    """The growth rate k of a dense unit with ``out_ch`` outputs and ``expansion`` (0 = out_ch // 4)."""
    return max(1, int(expansion)) if expansion else max(1, out_ch // 4)


@register_block("dense")
def dense(in_ch: int, out_ch: int, stride: int, *, kernel: int = 3, norm: str = "batch", act: str = "relu",
          expansion: float = 0) -> nn.Module:
    """DenseNet unit: 4 dense layers of growth rate k (expansion, default width/4), 1x1 transition (+ avg pool)."""
    k = growth_rate(out_ch, expansion)
    layers = [DenseLayer(in_ch + i * k, k, kernel, norm, act) for i in range(DENSE_LAYERS)]
    transition = [_pre_act_conv(in_ch + DENSE_LAYERS * k, out_ch, 1, norm, act)]
    if stride == 2:
        transition.append(nn.AvgPool2d(2))
    return nn.Sequential(*layers, *transition)
