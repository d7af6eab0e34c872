"""Classifier heads, registered by name; each maps a (B, C, H, W) feature map to (B, classes) logits."""
from __future__ import annotations

from torch import nn

from ..errors import look_up
from .spec import HeadSpec

HEAD_DESCRIPTIONS = {
    "gap_linear": "global average pool, one linear layer",
    "gap_mlp": "global average pool, linear (hidden units) + ReLU + dropout + linear",
    "flatten_linear": "flatten the whole map, dropout, one linear layer (ties the net to its input size)",
}
HEADS = tuple(HEAD_DESCRIPTIONS)


def make_head(head: HeadSpec, channels: int, map_size: tuple[int, int], num_classes: int) -> nn.Module:
    """The head for a feature map of ``channels`` x ``map_size``."""
    look_up(head.type, HEADS, "head")
    if head.type == "gap_linear":
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes))
    if head.type == "gap_mlp":
        hidden = head.hidden or max(16, channels // 2)
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, hidden), nn.ReLU(),
                             nn.Dropout(head.dropout), nn.Linear(hidden, num_classes))
    return nn.Sequential(nn.Flatten(), nn.Dropout(head.dropout),
                         nn.Linear(channels * map_size[0] * map_size[1], num_classes))
