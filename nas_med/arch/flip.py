"""``FlipAverage``: test-time horizontal flips baked into one exportable network.

The wrapped network sees the image and its mirror (the last axis reversed); their probabilities are averaged and
the output stays logits in the exported contract, as ``arch.ensemble.Ensemble`` does: ``log(mean softmax)`` or,
for multi-label, ``logit(mean sigmoid)``. Pure tensor ops, so TorchScript and ONNX export it alike. The weights
are the wrapped network's own (``unwrap_flips`` gives it back; ``model.safetensors`` stores its state dict, and
``spec.json``'s ``test_flips`` tells ``export.load`` to wrap it again)."""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["FLIP_KEY", "FlipAverage", "flip_keys", "unwrap_flips"]

FLIP_KEY = "test_flips"  # spec.json and preprocessing.json: true when the exported model averages over flips
_EPS = 1e-7


class FlipAverage(nn.Module):
    def __init__(self, net: nn.Module, average: str = "softmax"):
        super().__init__()
        if average not in ("softmax", "sigmoid"):
            raise ValueError(f"average must be softmax or sigmoid, got {average!r}")
        self.net = net
        self.average = average

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.net(x).float(), self.net(torch.flip(x, [3])).float()
        if self.average == "sigmoid":
            p = ((torch.sigmoid(a) + torch.sigmoid(b)) / 2).clamp(_EPS, 1 - _EPS)
            return torch.log(p) - torch.log1p(-p)
        return torch.log(((torch.softmax(a, 1) + torch.softmax(b, 1)) / 2).clamp(_EPS, 1 - _EPS))


def unwrap_flips(model: nn.Module) -> nn.Module:
    """The network inside a FlipAverage (``model`` itself otherwise): its weights, its Grad-CAM layer."""
    return model.net if isinstance(model, FlipAverage) else model


def flip_keys(model: nn.Module) -> dict:
    """What spec.json says of test-time flips: nothing without them (old folders stay byte-equal)."""
    return {FLIP_KEY: True} if isinstance(model, FlipAverage) else {}
