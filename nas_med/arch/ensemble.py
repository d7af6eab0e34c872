"""``Ensemble``: K members of one architecture whose probabilities are averaged, as one exportable network.

The input is normalised with the ensemble's statistics (one ``preprocessing.json``); each member was trained
with its own fold's statistics, so a fixed per-channel ``scale``/``shift`` (buffers, saved with the weights) turns
the ensemble's normalised input into the member's: exactly the input it was trained on. The output stays logits
in the exported contract: ``log(mean softmax)`` (softmax of it is the members' mean probability) or, for
multi-label, ``logit(mean sigmoid)``. Pure tensor ops, so TorchScript and ONNX export it as they do one member."""
from __future__ import annotations

import torch
from torch import nn

from .build import build
from .spec import ArchSpec

__all__ = ["AVERAGES", "Ensemble", "build_ensemble", "ensemble_keys"]

AVERAGES = ("softmax", "sigmoid")
_EPS = 1e-7


class Ensemble(nn.Module):
    def __init__(self, members: list[nn.Module], average: str = "softmax", channels: int = 1):
        super().__init__()
        if average not in AVERAGES:
            raise ValueError(f"average must be one of {AVERAGES}, got {average!r}")
        self.members = nn.ModuleList(members)
        self.average = average
        self.register_buffer("scale", torch.ones(len(members), channels))
        self.register_buffer("shift", torch.zeros(len(members), channels))

    def set_normalisation(self, ensemble: dict, member_stats: list[dict]) -> None:
        """Member i sees ``(x * std_e + mean_e - mean_i) / std_i`` for the ensemble's normalised ``x``."""
        mean_e, std_e = torch.tensor(ensemble["mean"]), torch.tensor(ensemble["std"])
        for i, stats in enumerate(member_stats):
            mean_i, std_i = torch.tensor(stats["mean"]), torch.tensor(stats["std"])
            self.scale[i] = std_e / std_i
            self.shift[i] = (mean_e - mean_i) / std_i

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = None
        for i, member in enumerate(self.members):
            xi = x * self.scale[i].view(1, -1, 1, 1) + self.shift[i].view(1, -1, 1, 1)
            logits = member(xi).float()
            p = torch.sigmoid(logits) if self.average == "sigmoid" else torch.softmax(logits, 1)
            total = p if total is None else total + p
        mean = (total / len(self.members)).clamp(_EPS, 1 - _EPS)
        if self.average == "sigmoid":
            return torch.log(mean) - torch.log1p(-mean)
        return torch.log(mean)


def build_ensemble(spec: ArchSpec, members: int, average: str = "softmax") -> Ensemble:
    """An untrained ensemble of ``members`` networks built from ``spec`` (weights come from safetensors)."""
    return Ensemble([build(spec) for _ in range(members)], average, spec.in_channels)


def ensemble_keys(model: nn.Module) -> dict:
    """What spec.json says beside the member's spec: nothing for one network (old folders stay byte-equal)."""
    if isinstance(model, Ensemble):
        return {"ensemble": len(model.members), "ensemble_average": model.average}
    return {}
