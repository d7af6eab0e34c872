"""torchvision classification networks as nas-med models: random init (or a local state_dict), adapted to the
spec's ``in_channels`` (new first conv / patch embedding) and ``num_classes`` (new classifier).

Supported families: ResNet/ResNeXt/Wide ResNet, DenseNet, EfficientNet (v1, v2), MobileNet v2/v3, ConvNeXt,
Swin (v1, v2) and ViT. ViT is built with ``image_size=input_size``, which must be divisible by its patch size.
Nothing is ever downloaded.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision.models as tvm
from torch import nn

from ..errors import UserError, look_up
from ._weights import read_state_dict
from .spec import ArchSpec, InvalidSpec

__all__ = ["TORCHVISION_NETS", "build_torchvision", "cam_stage", "feature_shape", "torchvision_stage_shapes"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Family:
    """Where a torchvision family keeps its input conv, its classifier and its feature stages."""

    first_conv: str  # module path of the conv that reads the image
    classifier: str  # module path prefix of the classifier (replaced for num_classes)
    features: str | None  # module whose children are the stages; "" = the model's own children; None = tokens
    channels_last: bool = False  # stage outputs are (B, H, W, C) (Swin)


_FAMILIES: dict[str, _Family] = {
    "resnet": _Family("conv1", "fc", ""),
    "resnext": _Family("conv1", "fc", ""),
    "wide_resnet": _Family("conv1", "fc", ""),
    "densenet": _Family("features.conv0", "classifier", "features"),
    "efficientnet": _Family("features.0.0", "classifier", "features"),
    "mobilenet_v2": _Family("features.0.0", "classifier", "features"),
    "mobilenet_v3": _Family("features.0.0", "classifier", "features"),
    "convnext": _Family("features.0.0", "classifier", "features"),
    "swin": _Family("features.0.0", "head", "features", channels_last=True),
    "vit": _Family("conv_proj", "heads", None),
}
_NOT_STAGES = ("avgpool", "fc")  # children of a ResNet that come after its feature map


def _family_of(name: str) -> _Family | None:
    for prefix, family in _FAMILIES.items():
        if name.startswith(prefix):
            return family
    return None


TORCHVISION_NETS: tuple[str, ...] = tuple(n for n in tvm.list_models(module=tvm) if _family_of(n))


def _family(spec: ArchSpec) -> tuple[str, _Family]:
    name = look_up(str(spec.torchvision), TORCHVISION_NETS, "torchvision network")
    family = _family_of(name)
    assert family is not None
    return name, family


def _construct(spec: ArchSpec) -> nn.Module:
    """The torchvision model with the spec's classes and input channels (on the current default device)."""
    name, family = _family(spec)
    kwargs: dict = {"num_classes": spec.num_classes}
    if family.features is None:  # ViT: positional embedding sized for the input
        patch = int(re.search(r"_(\d+)$", name).group(1))  # type: ignore[union-attr]
        if spec.input_size % patch:
            raise InvalidSpec(f"{name} needs an input size divisible by its patch size {patch}, "
                              f"got {spec.input_size}")
        kwargs["image_size"] = spec.input_size
    model = getattr(tvm, name)(weights=None, **kwargs)
    if spec.in_channels != 3:
        old = model.get_submodule(family.first_conv)
        assert isinstance(old, nn.Conv2d)
        model.set_submodule(family.first_conv, nn.Conv2d(
            spec.in_channels, old.out_channels, old.kernel_size, old.stride, old.padding, old.dilation,
            old.groups, old.bias is not None))
    return model


def _stages(model: nn.Module, family: _Family) -> list[tuple[str, nn.Module]]:
    """(path, module) pairs that, applied in order, give the feature map before pooling and classifier."""
    assert family.features is not None
    root = model.get_submodule(family.features) if family.features else model
    prefix = f"{family.features}." if family.features else ""
    return [(prefix + n, m) for n, m in root.named_children() if n not in _NOT_STAGES]


def torchvision_stage_shapes(spec: ArchSpec) -> list[tuple[str, int, int, int]]:
    """(module path, channels, height, width) after every feature stage, on the meta device (no memory).

    ViT has no stages: one entry ``encoder`` with the token grid. Raises InvalidSpec when the map collapses.
    """
    name, family = _family(spec)
    with torch.device("meta"):
        model = _construct(spec).eval()
        x = torch.zeros(1, spec.in_channels, spec.input_size, spec.input_size)
    if family.features is None:
        grid = spec.input_size // model.patch_size
        return [("encoder", model.hidden_dim, grid, grid)]
    shapes: list[tuple[str, int, int, int]] = []
    for path, module in _stages(model, family):
        try:
            x = module(x)
        except Exception as exc:  # noqa: BLE001 - any failure here means the input is too small
            size = f"{shapes[-1][2]}x{shapes[-1][3]}" if shapes else f"{spec.input_size}x{spec.input_size}"
            raise InvalidSpec(f"feature map collapses in {name} at {path} ({size} in): {spec.input_size} px "
                              f"input is too small ({str(exc).splitlines()[0]})") from None
        c, h, w = (x.shape[3], x.shape[1], x.shape[2]) if family.channels_last else tuple(x.shape[1:])
        if min(h, w) < 1:
            raise InvalidSpec(f"feature map collapses to {h}x{w} in {name} at {path}")
        shapes.append((path, int(c), int(h), int(w)))
    return shapes


def feature_shape(spec: ArchSpec) -> tuple[int, int, int]:
    """(channels, height, width) of the last feature map (ViT: hidden size and token grid)."""
    _, c, h, w = torchvision_stage_shapes(spec)[-1]
    return c, h, w


def cam_stage(spec: ArchSpec, min_side: int = 2) -> str | None:
    """Module path of the last stage whose map is at least ``min_side`` (2) squared; None for token models.

    ViT and Swin need a reshape transform for Grad-CAM (tokens -> map), which nas-med does not provide.
    """
    _, family = _family(spec)
    if family.features is None or family.channels_last:
        return None
    shapes = [s for s in torchvision_stage_shapes(spec) if min(s[2], s[3]) >= min_side]
    return shapes[-1][0] if shapes else None


def build_torchvision(spec: ArchSpec, pretrained_path: str | Path | None = None) -> nn.Module:
    """The torchvision network ``spec.torchvision`` for the spec's input and classes.

    ``pretrained_path``: a local state_dict file (loaded with ``weights_only=True``), for the stock network
    (3 channels, 1000 classes) or an adapted one. The first conv is converted to ``in_channels`` (RGB mean,
    rescaled), a classifier of another size stays random, and a ViT position embedding is interpolated.
    """
    torchvision_stage_shapes(spec)  # InvalidSpec before any memory is spent
    model = _construct(spec)
    if pretrained_path is not None:
        load_state(model, spec, pretrained_path)
    return model


def load_state(model: nn.Module, spec: ArchSpec, path: str | Path) -> None:
    """Load the state_dict file ``path`` into the adapted torchvision ``model`` (see ``build_torchvision``)."""
    name, family = _family(spec)
    state = read_state_dict(path)
    own = model.state_dict()
    if family.features is None and "encoder.pos_embedding" in state \
            and state["encoder.pos_embedding"].shape != own["encoder.pos_embedding"].shape:
        from torchvision.models.vision_transformer import interpolate_embeddings

        state = interpolate_embeddings(spec.input_size, model.patch_size, state)  # type: ignore[arg-type]
    first, head = f"{family.first_conv}.weight", f"{family.classifier}."
    fitted: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key not in own:
            raise UserError(f"weights file '{path}' does not fit {name}: unexpected key '{key}'.")
        target = own[key].shape
        if value.shape == target:
            fitted[key] = value
        elif key == first and value.shape[0] == target[0] and value.shape[2:] == target[2:]:
            fitted[key] = value.mean(1, keepdim=True).repeat(1, target[1], 1, 1) * (value.shape[1] / target[1])
        elif not key.startswith(head):
            raise UserError(f"weights file '{path}' does not fit {name}: '{key}' has shape {tuple(value.shape)}, "
                            f"the network needs {tuple(target)}.")
    missing = [k for k in own if k not in fitted and not k.startswith(head)]
    if missing:
        raise UserError(f"weights file '{path}' does not fit {name}: missing '{missing[0]}'.")
    model.load_state_dict(fitted, strict=False)
    log.info("loaded %d tensors from %s into %s (%d kept random)", len(fitted), path, name, len(own) - len(fitted))
