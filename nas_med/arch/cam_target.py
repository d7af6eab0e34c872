"""Which module Grad-CAM should read: the deepest feature map that is still at least 4x4 (else 2x2).

A 1x1 map gives an all-zero CAM and a 2x2 one a blob whatever the model learned, so for ``Net`` this is the
last stage (or the stem) whose output is >= 4x4, and for a torchvision CNN the analogous last feature stage.
ViT and Swin produce tokens, which Grad-CAM can only use with a reshape transform (tokens -> map); nas-med does
not provide one, so they get None.
"""
from __future__ import annotations

from torch import nn

from .build import Net, stage_shapes
from .spec import ArchSpec

__all__ = ["CAM_MIN_SIDE", "cam_target_layer"]

# smallest map side Grad-CAM should read when the network has one (benchmarks/cam_agreement.py chose it: at 2,
# the models whose last map is 2x2 scored no better than their randomised copies)
CAM_MIN_SIDE = 4


def cam_target_layer(model: nn.Module, spec: ArchSpec, min_side: int = CAM_MIN_SIDE) -> nn.Module | None:
    """The module of ``model`` (built from ``spec``) whose output Grad-CAM should use, or None if there is none.

    The deepest stage output whose map is at least ``min_side`` x ``min_side``; when no map is that large, the
    deepest of at least 2x2. The one place that picks the layer: the search, the export and predict all call it.
    """
    from .ensemble import Ensemble
    from .flip import unwrap_flips

    model = unwrap_flips(model)  # test-time flips: the wrapped network's layer
    if isinstance(model, Ensemble):  # a fold ensemble: its first member's layer (the gradients flow through it)
        model = model.members[0]
    for side in dict.fromkeys((max(2, min_side), 2)):
        layer = _deepest(model, spec, side)
        if layer is not None:
            return layer
    return None


def _deepest(model: nn.Module, spec: ArchSpec, side: int) -> nn.Module | None:
    if spec.torchvision:
        from .torchvision_nets import cam_stage

        path = cam_stage(spec, side)
        return None if path is None else model.get_submodule(path)
    assert isinstance(model, Net), f"expected the Net built from the spec, got {type(model).__name__}"
    modules = {"stem": model.stem, **{f"stage{i}": m for i, m in enumerate(model.stages)}}
    for name, _, h, w in reversed(stage_shapes(spec)):
        if min(h, w) >= side and not isinstance(modules[name], nn.Identity):
            return modules[name]
    return None
