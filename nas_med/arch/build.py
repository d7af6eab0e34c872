"""``build(spec) -> nn.Module``: the one way to get a model; and the feature-map check that runs before it."""
from __future__ import annotations

import functools
from pathlib import Path

import torch
from torch import nn

from ..errors import UserError, look_up
from ._registry import BLOCKS, make_block
from ._weights import load_exact
from .heads import HEADS, make_head
from .layers import ACTIVATIONS, NORMS, conv_norm_act
from .spec import ArchSpec, InvalidSpec, StemSpec

__all__ = ["STEMS", "InvalidSpec", "Net", "build", "check", "stage_shapes"]

STEMS = ("conv", "resnet")


class Net(nn.Module):
    """stem -> stages -> head. ``forward_features`` is everything before the head (the Grad-CAM target lives there)."""

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
    raise InvalidSpec(f"unknown stem type '{stem.type}'. Valid: {', '.join(STEMS)}.")


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

    For a torchvision spec, one entry per feature stage named by module path. Raises InvalidSpec with the
    reason when the spec is malformed or the map collapses. Cached per spec (a trial asks several times).
    """
    return list(_stage_shapes(spec))


@functools.lru_cache(maxsize=1024)
def _stage_shapes(spec: ArchSpec) -> tuple[tuple[str, int, int, int], ...]:
    _validate_io(spec)
    if spec.torchvision:
        from .torchvision_nets import torchvision_stage_shapes

        return tuple(torchvision_stage_shapes(spec))
    _validate_stages(spec)
    with torch.device("meta"):
        stem, stages, _ = _body(spec)
        x = torch.zeros(1, spec.in_channels, spec.input_size, spec.input_size)
    stem.eval(), stages.eval()
    shapes: list[tuple[str, int, int, int]] = []
    named = [("stem", stem, False)] + [(f"stage{i}", m, s.downsample) for i, (m, s) in
                                         enumerate(zip(stages, spec.stages))]
    for name, module, downsamples in named:
        if downsamples and max(x.shape[-2:]) <= 1:
            raise InvalidSpec(f"feature map collapses: {name} downsamples a 1x1 map; {spec.input_size} px input "
                              f"is too small for {_reduction(spec)}")
        try:
            x = module(x)
        except (RuntimeError, ValueError) as exc:
            raise InvalidSpec(f"feature map collapses in {name} ({_shape_of(shapes, spec)} in): "
                              f"{spec.input_size} px input is too small for {_reduction(spec)} "
                              f"({str(exc).splitlines()[0]})") from None
        if min(x.shape[-2:]) < 1:
            raise InvalidSpec(f"feature map collapses to {tuple(x.shape[-2:])} after {name}")
        shapes.append((name, int(x.shape[1]), int(x.shape[2]), int(x.shape[3])))
    return tuple(shapes)


def _reduction(spec: ArchSpec) -> str:
    n = sum(s.downsample for s in spec.stages)
    stem = " after a /4 resnet stem" if spec.stem is not None and spec.stem.type == "resnet" else ""
    return f"{n} downsampling stages{stem}"


def _shape_of(shapes: list[tuple[str, int, int, int]], spec: ArchSpec) -> str:
    if not shapes:
        return f"{spec.input_size}x{spec.input_size}"
    return f"{shapes[-1][2]}x{shapes[-1][3]}"


def _validate_io(spec: ArchSpec) -> None:
    if spec.in_channels < 1 or spec.num_classes < 1 or spec.input_size < 4:
        raise InvalidSpec(f"bad input/output: in_channels={spec.in_channels}, num_classes={spec.num_classes}, "
                          f"input_size={spec.input_size} (need >= 1, >= 1, >= 4)")


def _name(value: str, options, what: str, where: str) -> None:
    try:
        look_up(value, options, what)
    except UserError as exc:
        raise InvalidSpec(f"{where}: {exc}") from None


def _validate_stages(spec: ArchSpec) -> None:
    if not spec.stages:
        raise InvalidSpec("a spec needs at least one stage (or a torchvision name)")
    for i, s in enumerate(spec.stages):
        where = f"stages[{i}]"
        _name(s.block, BLOCKS, "block type", where)
        _name(s.norm, NORMS, "normalization", where)
        _name(s.act, ACTIVATIONS, "activation", where)
        if s.width < 1 or s.depth < 1:
            raise InvalidSpec(f"{where}: width and depth must be positive, got width={s.width}, depth={s.depth}")
        if s.kernel < 1 or s.kernel % 2 == 0:
            raise InvalidSpec(f"{where}: kernel must be a positive odd number, got {s.kernel!r}")
        if s.expansion < 0:
            raise InvalidSpec(f"{where}: expansion must be >= 0, got {s.expansion!r}")
    if spec.stem is not None:
        _name(spec.stem.type, STEMS, "stem type", "stem")
        _name(spec.stem.norm, NORMS, "normalization", "stem")
        _name(spec.stem.act, ACTIVATIONS, "activation", "stem")
        if spec.stem.width < 1:
            raise InvalidSpec(f"stem: width must be positive, got {spec.stem.width!r}")
    _name(spec.head.type, HEADS, "head", "head")
    if spec.head.hidden < 0 or not 0 <= spec.head.dropout < 1:
        raise InvalidSpec(f"head: need hidden >= 0 and 0 <= dropout < 1, got hidden={spec.head.hidden!r}, "
                          f"dropout={spec.head.dropout!r}")


def check(spec: ArchSpec) -> None:
    """Raise InvalidSpec (with the reason) if ``spec`` cannot make a working network."""
    stage_shapes(spec)


def build(spec: ArchSpec, *, pretrained_path: str | Path | None = None) -> nn.Module:
    """The network described by ``spec``, randomly initialised. Raises InvalidSpec for an unusable spec.

    ``pretrained_path``: optional local state_dict file (read with ``weights_only=True``); for a torchvision
    spec it may be the stock ImageNet file (see ``build_torchvision``), otherwise it must match exactly.
    """
    if spec.torchvision:
        _validate_io(spec)
        from .torchvision_nets import build_torchvision

        return build_torchvision(spec, pretrained_path)
    shapes = stage_shapes(spec)
    stem, stages, ch = _body(spec)
    _, _, h, w = shapes[-1]
    model = Net(stem, stages, make_head(spec.head, ch, (h, w), spec.num_classes))
    if pretrained_path is not None:
        load_exact(model, pretrained_path)
    return model
