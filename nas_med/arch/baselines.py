"""Reference networks as specs, built by the same ``build`` as every candidate.

Parameter counts for 3-channel input and 5 classes (the paper's RadImageNet MSK setting):

| name | spec | parameters |
|---|---|---|
| minicnn | 4 ``simple`` blocks 50-100-200-400, no norm, GAP + linear | 949,105 (paper: 948,293) |
| uenc | 5 ``double`` blocks 64-1024, no norm, no pool after the last, GAP + linear | 18,848,325 |
| resnet18 | ``resnet`` stem + 4 stages of 2 ``basic`` blocks 64-512 | 11,179,077 |
| resnet50 | ``resnet`` stem + ``bottleneck`` stages 256-2048 of depth 3-4-6-3 | 23,518,277 |
| vanilla | 3 ``simple`` blocks 16-32-64, no norm, flatten + linear | depends on input size |

miniCNN's widths are not published: a doubling series c-2c-4c-8c of 3x3 conv + ReLU + pool blocks has
378c^2 + O(c) parameters, and c = 50 is the closest to the reported 948,293 (+812, 0.09%). uenc, resnet18 and
resnet50 reproduce the paper's counts exactly (and torchvision's resnet18/50). The others are torchvision
definitions with random init, adapted to the input channels and classes (see ``torchvision_nets``).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from ..errors import look_up
from .spec import ArchSpec, HeadSpec, StageSpec, StemSpec

__all__ = ["BASELINES", "baseline_spec"]

SpecFactory = Callable[[int, int, int], ArchSpec]


def _plain(block: str, widths: list[int], *, pool_last: bool = True, head: str = "gap_linear") -> SpecFactory:
    def make(in_channels: int, num_classes: int, input_size: int) -> ArchSpec:
        stages = tuple(StageSpec(block, w, 1, 3, "none", "relu", pool_last or i < len(widths) - 1)
                       for i, w in enumerate(widths))
        return ArchSpec(in_channels, num_classes, input_size, stages, None, HeadSpec(head))

    return make


def _resnet(block: str, widths: list[int], depths: list[int]) -> SpecFactory:
    def make(in_channels: int, num_classes: int, input_size: int) -> ArchSpec:
        stages = tuple(StageSpec(block, w, d, 3, "batch", "relu", i > 0)
                       for i, (w, d) in enumerate(zip(widths, depths)))
        return ArchSpec(in_channels, num_classes, input_size, stages, StemSpec("resnet", 64, "batch", "relu"))

    return make


def _torchvision(name: str) -> SpecFactory:
    def make(in_channels: int, num_classes: int, input_size: int) -> ArchSpec:
        return ArchSpec(in_channels, num_classes, input_size, torchvision=name)

    return make


# name -> (spec factory, one-line description)
BASELINES: dict[str, tuple[SpecFactory, str]] = {
    "minicnn": (_plain("simple", [50, 100, 200, 400]),
                "miniCNN: 4 x (conv3x3 + ReLU + max pool) 50-400, GAP, linear (~949 k)"),
    "uenc": (_plain("double", [64, 128, 256, 512, 1024], pool_last=False),
             "U-Net encoder: 5 x (2 conv3x3 + ReLU) 64-1024, pool between, GAP, linear"),
    "resnet18": (_resnet("basic", [64, 128, 256, 512], [2, 2, 2, 2]), "ResNet-18 as block specs"),
    "resnet50": (_resnet("bottleneck", [256, 512, 1024, 2048], [3, 4, 6, 3]), "ResNet-50 as block specs"),
    "vanilla": (_plain("simple", [16, 32, 64], head="flatten_linear"),
                "3 x (conv3x3 + ReLU + max pool) 16-32-64, flatten, linear"),
    **{name: (_torchvision(name), f"torchvision {name}, random init") for name in (
        "resnet152", "densenet121", "densenet161", "densenet201", "efficientnet_b0", "convnext_tiny", "swin_t",
        "vit_b_16")},
}


def baseline_spec(name: str, in_channels: int = 3, num_classes: int = 5, input_size: int = 224) -> ArchSpec:
    """The spec of reference network ``name``; an unknown name raises UserError with a did-you-mean."""
    factory, _ = BASELINES[look_up(name, BASELINES, "reference network")]
    spec = factory(in_channels, num_classes, input_size)
    return replace(spec, name=name)
