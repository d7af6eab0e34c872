"""``build(spec) -> nn.Module``: the one way to get a model; and the feature-map check that runs before it."""
from __future__ import annotations

import torch
from torch import nn

from ..errors import UserError
from .blocks import make_block
from .heads import make_head
from .layers import conv_norm_act
from .spec import ArchSpec, StemSpec


class InvalidSpec(UserError):
    """A spec that cannot make a working network (e.g. its feature map collapses); the message says why."""


class Net(nn.Module):
    """stem -> stages -> head. ``features`` is everything before the head (the Grad-CAM target lives there)."""

    def __init__(self, stem: nn.Module, stages: nn.Sequential, head: nn.Module):
        super().__init__()
        self.stem, self.stages, self.head = stem, stages, head

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))  # (B, C, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))  # (B, classes)


def _stem(stem: StemSpec | None, in_ch: int) -> tuple[nn.Module, int]:
    if stem is None:
        return nn.Identity(), in_ch
    if stem.type == "conv":
        return conv_norm_act(in_ch, stem.width, 3, 1, stem.norm, stem.act), stem.width
    if stem.type == "resnet":
        return nn.Sequential(conv_norm_act(in_ch, stem.width, 7, 2, stem.norm, stem.act),
                             nn.MaxPool2d(3, 2, 1)), stem.width
    raise UserError(f"unknown stem type '{stem.type}'. Valid: conv, resnet.")


def _body(spec: ArchSpec) -> tuple[nn.Module, nn.Sequential, int]:
    stem, ch = _stem(spec.stem, spec.in_channels)
    stages = []
    for stage in spec.stages:
        blocks = []
        for i in range(stage.depth):
            stride = 2 if stage.downsample and i == 0 else 1
            blocks.append(make_block(stage.block, ch, stage.width, stride, kernel=stage.kernel, norm=stage.norm,
                                     act=stage.act, expansion=stage.expansion))
            ch = stage.width
        stages.append(nn.Sequential(*blocks))
    return stem, nn.Sequential(*stages), ch


def stage_shapes(spec: ArchSpec) -> list[tuple[str, int, int, int]]:
    """(name, channels, height, width) after the stem and after every stage, computed without allocating memory.

    Raises InvalidSpec with the reason when the map collapses.
    """
    if spec.torchvision:
        from .torchvision_nets import feature_shape

        return [("features", *feature_shape(spec))]
    _validate_io(spec)
    with torch.device("meta"):
        stem, stages, _ = _body(spec)
        x = torch.zeros(1, spec.in_channels, spec.input_size, spec.input_size)
    stem.eval(), stages.eval()
    shapes = []
    named = [("stem", stem, False)] + [(f"stage{i}", m, s.downsample) for i, (m, s) in
                                         enumerate(zip(stages, spec.stages))]
    for name, module, downsamples in named:
        if downsamples and max(x.shape[-2:]) <= 1:
            raise InvalidSpec(f"feature map collapses: {name} downsamples a 1x1 map; {spec.input_size} px input "
                              f"is too small for {sum(s.downsample for s in spec.stages)} downsampling stages")
        try:
            x = module(x)
        except (RuntimeError, ValueError) as exc:
            raise InvalidSpec(f"feature map collapses in {name} ({_shape_of(shapes, spec)} in): "
                              f"{spec.input_size} px input is too small for this many downsampling blocks "
                              f"({str(exc).splitlines()[0]})") from None
        if min(x.shape[-2:]) < 1:
            raise InvalidSpec(f"feature map collapses to {tuple(x.shape[-2:])} after {name}")
        shapes.append((name, x.shape[1], x.shape[2], x.shape[3]))
    return shapes


def _shape_of(shapes, spec) -> str:
    if not shapes:
        return f"{spec.input_size}x{spec.input_size}"
    return f"{shapes[-1][2]}x{shapes[-1][3]}"


def _validate_io(spec: ArchSpec) -> None:
    if spec.in_channels < 1 or spec.num_classes < 1 or spec.input_size < 4:
        raise InvalidSpec(f"bad input/output: in_channels={spec.in_channels}, num_classes={spec.num_classes}, "
                          f"input_size={spec.input_size}")
    if not spec.stages:
        raise InvalidSpec("a spec needs at least one stage (or a torchvision name)")
    for i, s in enumerate(spec.stages):
        if s.width < 1 or s.depth < 1:
            raise InvalidSpec(f"stages[{i}]: width and depth must be positive, got width={s.width}, depth={s.depth}")


def check(spec: ArchSpec) -> None:
    """Raise InvalidSpec (with the reason) if ``spec`` cannot make a working network."""
    stage_shapes(spec)


def build(spec: ArchSpec) -> nn.Module:
    """The network described by ``spec``, randomly initialised. Raises InvalidSpec for an unusable spec."""
    if spec.torchvision:
        from .torchvision_nets import build_torchvision

        return build_torchvision(spec)
    shapes = stage_shapes(spec)
    stem, stages, ch = _body(spec)
    _, _, h, w = shapes[-1]
    return Net(stem, stages, make_head(spec.head, ch, (h, w), spec.num_classes))
