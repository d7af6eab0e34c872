"""K copies of one network held as one "wide" network: copy k's channels are the k-th block of every layer's.

Every convolution becomes a grouped convolution (K times its groups) over the copies' channels laid side by
side, every BatchNorm / GroupNorm one over K times the channels (its statistics stay per copy, as they are per
channel), every linear layer a batched matrix product; activations, pools, flatten, dropout and the element-wise
containers (``Net``, ``Residual``, ``MBConv``, ``SqueezeExcite``, ``ConvNeXtBlock``) work unchanged on the wide
map; dropout draws copy k's mask from copy k's own generator (``WideDropout``). Input is (B, K*C, H, W) (copy k's
batch in channels k*C..), output (B, K, classes).

Each wide tensor (parameter or buffer) has the name of the per-copy tensor and holds the K copies' tensors
stacked on a new first dimension and reshaped, so ``tensor.view(K, *shape)[k]`` is copy k's (``copy_state``).
A module not listed here (a DenseNet layer concatenates channels; torchvision networks) raises ``NotFusable``."""
from __future__ import annotations

import copy
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..arch.blocks import Residual
from ..arch.build import Net
from ..arch.layers import ACTIVATIONS, LayerNorm2d

__all__ = ["NotFusable", "WideDropout", "WideLayerNorm2d", "WideLinear", "copy_state", "per_copy_shapes", "widen"]


class NotFusable(ValueError):
    """The network cannot be widened into K copies; the message is the reason."""


class WideLinear(nn.Module):
    """K linear layers: (B, K*in) -> (B, K*out); ``weight`` (K, out, in), ``bias`` (K, out)."""

    def __init__(self, k: int, in_features: int, out_features: int, bias: bool):
        super().__init__()
        self.k, self.in_features, self.out_features = k, in_features, out_features
        self.weight = nn.Parameter(torch.empty(k, out_features, in_features))
        self.bias = nn.Parameter(torch.empty(k, out_features)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        h = x.reshape(b, self.k, self.in_features).transpose(0, 1)  # (K, B, in)
        w = self.weight.transpose(1, 2)  # (K, in, out)
        y = torch.bmm(h, w) if self.bias is None else torch.baddbmm(self.bias.unsqueeze(1), h, w)
        return y.transpose(0, 1).reshape(b, self.k * self.out_features)


class WideLayerNorm2d(nn.Module):
    """K ``LayerNorm2d`` (each pixel normalised over its copy's channels); ``weight`` and ``bias`` (K, C)."""

    def __init__(self, k: int, channels: int, eps: float):
        super().__init__()
        self.k, self.channels, self.eps = k, channels, eps
        self.weight = nn.Parameter(torch.ones(k, channels))
        self.bias = nn.Parameter(torch.zeros(k, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        y = x.reshape(b, self.k, self.channels, h, w).permute(0, 1, 3, 4, 2)  # (B, K, H, W, C)
        y = F.layer_norm(y, (self.channels,), None, None, self.eps)
        y = y * self.weight[:, None, None, :] + self.bias[:, None, None, :]
        return y.permute(0, 1, 4, 2, 3).reshape(b, self.k * self.channels, h, w)


class WideDropout(nn.Module):
    """K dropouts over (B, K*F): with ``generators`` (one per copy, set by the trainer) copy k's mask is drawn from
    its own generator as ``F.dropout`` on the CPU draws a separate run's from the global one (``bernoulli_(1 - p)``
    over the copy's (B, F), scaled by 1 / (1 - p)), and a copy marked inactive in ``active`` draws nothing; without
    generators, one ``F.dropout`` over the whole map."""

    def __init__(self, k: int, p: float):
        super().__init__()
        self.k, self.p = k, float(p)
        self.generators: Sequence[torch.Generator] | None = None
        self.active: Sequence[bool] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if self.generators is None:
            return F.dropout(x, self.p, True)
        per_copy = x.reshape(x.shape[0], self.k, -1)
        out = []
        for i, gen in enumerate(self.generators):
            xi = per_copy[:, i]
            if self.active is not None and not self.active[i]:
                out.append(xi)
                continue
            noise = torch.empty_like(xi, memory_format=torch.contiguous_format).bernoulli_(1 - self.p, generator=gen)
            out.append(xi * noise.div_(1 - self.p))
        return torch.stack(out, 1).reshape(x.shape)


_STATELESS = (nn.Identity, nn.Sequential, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Sigmoid,
              *ACTIVATIONS.values())


def _containers() -> tuple[type, ...]:
    """Modules whose own forward is element-wise or channel-wise on their children's outputs."""
    from ..arch._convnext import ConvNeXtBlock
    from ..arch._mbconv import MBConv, SqueezeExcite

    return Net, Residual, MBConv, SqueezeExcite, ConvNeXtBlock


def _wide_leaf(module: nn.Module, k: int, where: str) -> nn.Module:
    """The K-copy version of one module (an empty shell; ``widen`` fills the tensors)."""
    if isinstance(module, nn.Conv2d):
        return nn.Conv2d(k * module.in_channels, k * module.out_channels, module.kernel_size, module.stride,
                         module.padding, module.dilation, k * module.groups, module.bias is not None,
                         module.padding_mode)
    if isinstance(module, nn.BatchNorm2d):
        return nn.BatchNorm2d(k * module.num_features, module.eps, module.momentum, module.affine,
                              module.track_running_stats)
    if isinstance(module, nn.GroupNorm):
        return nn.GroupNorm(k * module.num_groups, k * module.num_channels, module.eps, module.affine)
    if isinstance(module, LayerNorm2d):
        return WideLayerNorm2d(k, module.normalized_shape[0], module.eps)
    if isinstance(module, nn.Linear):
        return WideLinear(k, module.in_features, module.out_features, module.bias is not None)
    if isinstance(module, nn.Dropout):
        return WideDropout(k, module.p)
    if isinstance(module, nn.Flatten) and module.start_dim == 1 and module.end_dim == -1:
        return module  # copy k's (C, h, w) block flattens to its contiguous slice, in the same order
    if isinstance(module, _STATELESS) or isinstance(module, _containers()):
        return module
    raise NotFusable(f"{where or 'the network'} ({type(module).__name__}) has no K-copy form")


def _swap_leaves(wide: nn.Module, k: int, prefix: str = "") -> None:
    for name, child in list(wide.named_children()):
        where = f"{prefix}{name}"
        new = _wide_leaf(child, k, where)
        if new is not child:
            setattr(wide, name, new)
        else:
            _swap_leaves(child, k, where + ".")
    _wide_leaf(wide, k, prefix.rstrip("."))  # the module itself must be a known kind
    for name, p in list(wide.named_parameters(recurse=False)):  # a per-channel scale (ConvNeXt's layer scale)
        if isinstance(wide, _containers()):
            setattr(wide, name, nn.Parameter(p.detach().new_empty(k * p.shape[0], *p.shape[1:])))


def per_copy_shapes(model: nn.Module) -> dict[str, torch.Size]:
    """Shape of every parameter and buffer of one copy, by state-dict name."""
    return {name: t.shape for name, t in model.state_dict().items()}


def widen(models: list[nn.Module]) -> nn.Module:
    """One wide network holding ``models`` (K copies of one architecture), trained or not; raises NotFusable."""
    k = len(models)
    wide = copy.deepcopy(models[0])
    _swap_leaves(wide, k)
    states = [m.state_dict() for m in models]
    target = wide.state_dict()
    if set(target) != set(states[0]):
        raise NotFusable("the wide network's tensors do not match the network's")
    with torch.no_grad():
        for name, tensor in target.items():
            if name.endswith("num_batches_tracked"):
                tensor.copy_(states[0][name])
                continue
            stacked = torch.stack([s[name] for s in states])
            if stacked.numel() != tensor.numel():
                raise NotFusable(f"'{name}' has no K-copy form ({tuple(stacked.shape)} vs {tuple(tensor.shape)})")
            tensor.copy_(stacked.reshape(tensor.shape))
    return wide


def copy_state(wide_state: dict[str, torch.Tensor], shapes: dict[str, torch.Size], k: int, index: int,
               batches: int | None = None) -> dict[str, torch.Tensor]:
    """Copy ``index``'s state dict (cloned) out of a wide network's of ``k`` copies; ``batches`` replaces the
    BatchNorm ``num_batches_tracked`` (the copy's own count of training steps)."""
    state = {}
    for name, shape in shapes.items():
        tensor = wide_state[name]
        if name.endswith("num_batches_tracked"):
            state[name] = tensor.detach().clone() if batches is None else torch.tensor(batches, dtype=tensor.dtype)
        else:
            state[name] = tensor.detach().reshape(k, *shape)[index].clone()
    return state
