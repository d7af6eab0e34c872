"""Knowledge distillation's loss: a teacher's logits on the training images, as soft targets for a student.

``SoftTargets`` holds the teacher's logits (N, C) for the N training images, in the order of ``data.train``, with
the temperature T and the weight w of the soft loss. A training batch (its indices into the training split) is
scored ``(1 - w) * hard + w * T^2 * KL(softmax(teacher / T) || softmax(student / T))`` (Hinton et al. 2015; the T^2
keeps the soft gradients' scale as T changes), where ``hard`` is the training loss without a teacher; multi-label
tasks use the per-label sigmoid's cross-entropy in place of the KL divergence. Only the training loss changes: the
validation loss that picks the best epoch (and settles the recipe) is the plain one."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

__all__ = ["SoftTargets"]


@dataclass
class SoftTargets:
    logits: torch.Tensor  # (N, C) float: the teacher's logits, one row per training image
    temperature: float = 4.0
    weight: float = 0.5
    multilabel: bool = False
    _on: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not (self.temperature > 0 and 0 <= self.weight <= 1):
            raise ValueError(f"distillation needs T > 0 and 0 <= w <= 1, got T={self.temperature}, w={self.weight}")
        self.logits = self.logits.detach().float().cpu()

    def __len__(self) -> int:
        return int(self.logits.shape[0])

    def subset(self, index: torch.Tensor) -> SoftTargets:
        """The rows at ``index`` (a 1-D long tensor), as ``data.types.Split.subset`` takes images."""
        return SoftTargets(self.logits[index], self.temperature, self.weight, self.multilabel)

    def _targets(self, device: torch.device) -> torch.Tensor:
        """The teacher's tempered probabilities on ``device``, copied there once."""
        key = str(device)
        if key not in self._on:
            z = self.logits / self.temperature
            self._on[key] = (torch.sigmoid(z) if self.multilabel else torch.softmax(z, 1)).to(device)
        return self._on[key]

    def loss(self, logits: torch.Tensor, y: torch.Tensor, index: torch.Tensor,
             hard: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """The training loss of a batch: ``logits`` of the images at ``index`` of the training split, labels
        ``y``, ``hard`` the plain loss."""
        target, z, t = self._targets(logits.device)[index], logits.float() / self.temperature, self.temperature
        if self.multilabel:
            soft = F.binary_cross_entropy_with_logits(z, target)
        else:
            soft = F.kl_div(F.log_softmax(z, 1), target, reduction="batchmean")
        return (1 - self.weight) * hard(logits, y) + self.weight * t * t * soft
