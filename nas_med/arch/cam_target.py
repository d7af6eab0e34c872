"""Which module Grad-CAM should read: the deepest feature map that is still at least 2x2.

A 1x1 map gives an all-zero CAM, so for ``Net`` this is the last stage (or the stem) whose output is >= 2x2,
and for a torchvision CNN the analogous last feature stage. ViT and Swin produce tokens, which Grad-CAM can only
use with a reshape transform (tokens -> map); nas-med does not provide one, so they get None.
"""
from __future__ import annotations

from torch import nn

from .build import Net, stage_shapes
from .spec import ArchSpec

__all__ = ["cam_target_layer"]


def cam_target_layer(model: nn.Module, spec: ArchSpec) -> nn.Module | None:
    """The module of ``model`` (built from ``spec``) whose output Grad-CAM should use, or None if there is none."""
    if spec.torchvision:
        from .torchvision_nets import cam_stage

        path = cam_stage(spec)
        return None if path is None else model.get_submodule(path)
    assert isinstance(model, Net), f"expected the Net built from the spec, got {type(model).__name__}"
    modules = {"stem": model.stem, **{f"stage{i}": m for i, m in enumerate(model.stages)}}
    for name, _, h, w in reversed(stage_shapes(spec)):
        if min(h, w) >= 2 and not isinstance(modules[name], nn.Identity):
            return modules[name]
    return None
