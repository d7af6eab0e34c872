"""One training run of one network on one prepared dataset: Adam, the best epoch by validation loss kept."""
from __future__ import annotations

import copy
import logging
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data.types import Dataset, Split
from .errors import UserError
from .metrics import all_metrics

log = logging.getLogger(__name__)


class TrainingFailed(RuntimeError):
    """The candidate cannot be trained (NaN/infinite loss, out of memory); the message is the reason."""


@dataclass
class TrainConfig:
    """How one candidate is trained (the paper's recipe is Adam, lr 1e-4, batch 32, best epoch by val loss)."""

    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 32
    weight_decay: float = 0.0
    class_weighting: bool = False
    device: str = "auto"
    amp: bool = True
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    """The model at its best epoch, per-epoch history, and the kept epoch's validation metrics."""

    model: nn.Module
    history: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    val: dict = field(default_factory=dict)
    epoch_seconds: float = float("nan")
    device: str = "cpu"


def pick_device(name: str = "auto") -> torch.device:
    """CUDA, then Apple MPS, then CPU for ``auto``; otherwise the named device, which must exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown --device '{name}' (use auto, cpu, cuda, cuda:N or mps).") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device '{name}' asked for CUDA but no CUDA GPU is available.")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"--device '{name}' asked for MPS but it is not available.")
    return device


class Normalizer:
    """uint8 (B, C, H, W) -> float, standardised with the training split's per-channel mean and std."""

    def __init__(self, train_images: torch.Tensor):
        x = train_images.float() / 255
        self.mean = x.mean(dim=(0, 2, 3)).tolist()
        self.std = [max(s, 1e-3) for s in x.std(dim=(0, 2, 3)).tolist()]

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean, device=images.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=images.device).view(1, -1, 1, 1)
        return (images.float() / 255 - mean) / std

    def to_dict(self) -> dict:
        return {"mean": self.mean, "std": self.std}


class DeviceSplit:
    """A split held on the training device (uint8 images, so a small dataset fits on a GPU)."""

    def __init__(self, split: Split, device: torch.device, multilabel: bool):
        self.images = split.images.to(device)
        self.labels = split.labels.to(device).float() if multilabel else split.labels.to(device).long()

    def __len__(self) -> int:
        return int(self.images.shape[0])


def _loss_fn(data: Dataset, cfg: TrainConfig, device: torch.device) -> Callable:
    if data.task == "multilabel":
        pos_weight = None
        if cfg.class_weighting:
            pos = data.train.labels.float().sum(0).clamp(min=1)
            pos_weight = ((len(data.train) - pos) / pos).to(device)
        return lambda logits, y: F.binary_cross_entropy_with_logits(logits.float(), y, pos_weight=pos_weight)
    weight = None
    if cfg.class_weighting:
        counts = torch.bincount(data.train.labels, minlength=data.num_classes).float().clamp(min=1)
        weight = (counts.sum() / (len(counts) * counts)).to(device)
    return lambda logits, y: F.cross_entropy(logits.float(), y, weight=weight)


def predict_probs(model: nn.Module, images: torch.Tensor, normalize: Normalizer, multilabel: bool,
                  batch_size: int = 256) -> torch.Tensor:
    """Class probabilities (softmax, or sigmoid for multi-label) for uint8 images, in eval mode."""
    was_training = model.training
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, images.shape[0], batch_size):
            logits = model(normalize(images[start:start + batch_size])).float()
            out.append(torch.sigmoid(logits) if multilabel else torch.softmax(logits, 1))
    model.train(was_training)
    return torch.cat(out)


def evaluate(model: nn.Module, split: DeviceSplit, normalize: Normalizer, task: str, loss_fn: Callable,
             batch_size: int = 256, positive: int | None = None) -> dict:
    """Loss and metrics of ``model`` on ``split``."""
    multilabel = task == "multilabel"
    was_training = model.training
    model.eval()
    losses, probs = [], []
    with torch.no_grad():
        for start in range(0, len(split), batch_size):
            x = normalize(split.images[start:start + batch_size])
            y = split.labels[start:start + batch_size]
            logits = model(x).float()
            losses.append(loss_fn(logits, y).item() * len(y))
            probs.append(torch.sigmoid(logits) if multilabel else torch.softmax(logits, 1))
    model.train(was_training)
    p = torch.cat(probs).cpu().numpy()
    metrics = all_metrics(task, split.labels.cpu().numpy(), p, 1 if positive is None else positive)
    metrics["loss"] = float(sum(losses) / max(1, len(split)))
    return metrics


def train(model: nn.Module, data: Dataset, cfg: TrainConfig,
          on_epoch: Callable[[int, dict], None] | None = None) -> TrainResult:
    """Train ``model`` on ``data.train`` for ``cfg.epochs``, keep the weights of the epoch with the lowest
    validation loss. ``on_epoch(epoch, record)`` is called after every epoch (pruning raises from there).
    Raises TrainingFailed for a NaN/infinite loss or out-of-memory."""
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
    multilabel = data.task == "multilabel"
    normalize = Normalizer(data.train.images)
    train_split = DeviceSplit(data.train, device, multilabel)
    val_split = DeviceSplit(data.val, device, multilabel)
    # channels-last only on CUDA: on CPU, torch 2.14.1's oneDNN backward of a channels-last 1x1 stride-2 conv
    # (a ResNet shortcut) corrupts the heap and kills the process (benchmarks/README.md has the repro)
    channels_last = device.type == "cuda"
    model = model.to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = _loss_fn(data, cfg, device)
    use_amp = cfg.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    history: list[dict] = []
    best_loss, best_state, best_epoch, best_val = float("inf"), None, -1, {}
    n, bs = len(train_split), cfg.batch_size
    try:
        for epoch in range(cfg.epochs):
            model.train()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            order = torch.randperm(n, generator=gen).to(device)
            total, seen = 0.0, 0
            for i in range(0, n - bs + 1 if n >= 2 * bs else n, bs):  # drop a last batch of 1 (BatchNorm)
                idx = order[i:i + bs]
                if len(idx) < 2:
                    continue
                x = normalize(train_split.images[idx])
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                y = train_split.labels[idx]
                with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                    loss = loss_fn(model(x), y)
                if not torch.isfinite(loss):
                    raise TrainingFailed(f"non-finite training loss ({loss.item()}) at epoch {epoch}")
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                total += loss.item() * len(idx)
                seen += len(idx)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds = time.perf_counter() - start
            val = evaluate(model, val_split, normalize, data.task, loss_fn, positive=data.info.get("positive"))
            if not np.isfinite(val["loss"]):
                raise TrainingFailed(f"non-finite validation loss at epoch {epoch}")
            record = {"epoch": epoch, "train_loss": total / max(1, seen), "val_loss": val["loss"],
                      "val_auc": val["auc"], "val_accuracy": val["accuracy"], "seconds": seconds}
            history.append(record)
            if val["loss"] < best_loss:
                best_loss, best_epoch, best_val = val["loss"], epoch, val
                best_state = copy.deepcopy(model.state_dict())
            if on_epoch is not None:
                on_epoch(epoch, record)
    except torch.OutOfMemoryError as exc:
        raise TrainingFailed(f"out of memory: {str(exc).splitlines()[0]}") from None
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return TrainResult(model, history, best_epoch, best_val,
                       statistics.median(r["seconds"] for r in history) if history else float("nan"), str(device))
