"""Test-time flips settled on validation: does averaging a model's probabilities over the image and its mirror
lower the validation loss?

Every reported seed's model is scored on the validation split with and without flips (no training: the same
models), and the means over seeds are compared. Flips are kept (``FLIP_MARGIN``) when they lower the mean
validation loss by at least 1 % (relative) without lowering the mean validation AUC by more than
``FLIP_AUC_SLACK``; ties fall to the simpler model, without flips. ``on`` and ``off`` force the choice; a recipe
that forbids flips (laterality matters, ``flips: false``) never flips at test time; a fold ensemble trained on
train + val has no held-out split left, so ``auto`` keeps it without flips. The test figures with and without
flips are recorded beside the choice (never used to make it)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..arch.flip import FlipAverage
from ..data.types import Dataset, Split
from ..errors import UserError
from ..metrics import all_metrics
from ..train import Normalizer, batched_logits

__all__ = ["FLIP_AUC_SLACK", "FLIP_MARGIN", "FLIP_MODES", "FlipScores", "check_flip_mode", "decide_flips",
           "flip_logits", "with_flips"]

FLIP_MODES = ("auto", "on", "off")
FLIP_MARGIN = 0.01     # flips must lower the mean validation loss by this share
FLIP_AUC_SLACK = 0.002  # ... and may not lower the mean validation AUC by more than this


def check_flip_mode(mode) -> str:
    """``auto``, ``on`` or ``off`` (YAML's true/false read as on/off)."""
    if isinstance(mode, bool):
        mode = "on" if mode else "off"
    if mode not in FLIP_MODES:
        raise UserError(f"final recipe: test_flips must be one of {', '.join(FLIP_MODES)}, got {mode!r}.")
    return mode


def with_flips(model: nn.Module, task: str) -> FlipAverage:
    return FlipAverage(model, "sigmoid" if task == "multilabel" else "softmax")


def flip_logits(model: nn.Module, images: torch.Tensor, normalize: Normalizer, task: str
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits without flips, logits of the flip-averaged model) of uint8 ``images``, on the CPU."""
    plain = batched_logits(model, images, normalize).cpu()
    flipped = batched_logits(model, torch.flip(images, [3]), normalize).cpu()
    if task == "multilabel":
        p = ((torch.sigmoid(plain) + torch.sigmoid(flipped)) / 2).clamp(1e-7, 1 - 1e-7)
        return plain, torch.log(p) - torch.log1p(-p)
    return plain, torch.log(((torch.softmax(plain, 1) + torch.softmax(flipped, 1)) / 2).clamp(1e-7, 1 - 1e-7))


def _loss(logits: torch.Tensor, labels: torch.Tensor, task: str) -> float:
    if task == "multilabel":
        return float(F.binary_cross_entropy_with_logits(logits.double(), labels.double()))
    return float(F.cross_entropy(logits.double(), labels.long()))


@dataclass
class FlipScores:
    """Validation loss and AUC of each seed's model without (``off``) and with (``on``) flips."""

    loss: dict[str, list[float]] = field(default_factory=lambda: {"off": [], "on": []})
    auc: dict[str, list[float]] = field(default_factory=lambda: {"off": [], "on": []})

    def add(self, model: nn.Module, split: Split, normalize: Normalizer, task: str, positive: int,
            device: torch.device | str = "cpu") -> None:
        labels = split.labels.cpu()
        for key, logits in zip(("off", "on"), flip_logits(model, split.images.to(device), normalize, task)):
            self.loss[key].append(_loss(logits, labels, task))
            probs = torch.sigmoid(logits) if task == "multilabel" else torch.softmax(logits, 1)
            self.auc[key].append(float(all_metrics(task, labels.numpy(), probs.numpy(), positive)["auc"]))


def decide_flips(mode: str, scores: FlipScores | None, data: Dataset, allowed: bool = True) -> tuple[bool, dict]:
    """(flip at test time?, the record of the choice: mode, chosen, why, mean validation loss and AUC off/on)."""
    record: dict = {"mode": mode, "chosen": False}
    if scores is not None and scores.loss["off"]:
        for name, values in (("val_loss", scores.loss), ("val_auc", scores.auc)):
            record[name] = {k: float(np.mean(v)) for k, v in values.items()}
    if mode == "off":
        record["why"] = "off in the recipe"
    elif not allowed:
        record["why"] = "the recipe forbids flips (laterality)"
    elif mode == "on":
        record.update(chosen=True, why="on in the recipe")
    elif "val_loss" not in record:
        record["why"] = ("no held-out split (a fold ensemble trains on train + val)" if data.info.pooled
                         else "no validation images")
    else:
        loss, auc = record["val_loss"], record["val_auc"]
        better = math.isfinite(loss["on"]) and loss["on"] <= loss["off"] - FLIP_MARGIN * abs(loss["off"])
        kept_auc = not auc["on"] < auc["off"] - FLIP_AUC_SLACK
        record["chosen"] = bool(better and kept_auc)
        record["why"] = (f"validation loss {loss['off']:.4f} -> {loss['on']:.4f}, AUC {auc['off']:.4f} -> "
                         f"{auc['on']:.4f}: " + ("kept" if record["chosen"] else "not kept") +
                         f" (flips must lower the loss by {FLIP_MARGIN:.0%} without losing more than "
                         f"{FLIP_AUC_SLACK:g} AUC)")
    return record["chosen"], record
