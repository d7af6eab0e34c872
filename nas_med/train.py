"""One training run of one network on one prepared dataset: Adam, the best epoch by validation loss kept.

The per-batch loop never waits for the device: losses are summed on the device and read (and checked for NaN/inf)
once per epoch, and step times are taken without synchronising. ``epoch_seconds`` is ``steps per epoch x a low
quantile of the step times`` (``STEP_QUANTILE``), where a step's time is, on CPU, the CPU time the process spent
on it divided by torch's threads (time the machine gives to other processes is not counted) and, on CUDA, the
device time between two events. It measures the network on this device, not the machine's load; the epochs'
median wall time is kept beside it as ``epoch_seconds_raw``."""
from __future__ import annotations

import contextlib
import copy
import logging
import math
import statistics
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .augment import augment_batch, check_policy
from .data.preprocess import channel_stats
from .data.types import Dataset, Split
from .errors import UserError
from .metrics import all_metrics, nonfinite_rows
from .precision import resolve_precision, safe_layout
from .schedule import make_optimizer, make_scheduler
from .soft_targets import SoftTargets

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
    precision: str = "auto"  # auto, fp32, bf16 or fp16 (nas_med.precision); replaces the old ``amp`` flag
    seed: int = 0
    # the final recipe's knobs (nas_med.final.recipe); these defaults are the search recipe, unchanged
    optimizer: str = "adam"      # adam or adamw (nas_med.schedule)
    schedule: str = "constant"   # constant or cosine (linear warm-up, then cosine decay to 0)
    warmup: float = 0.0          # share of all steps spent warming up (cosine only)
    augment: str = "none"        # augmentation policy (nas_med.augment): none, light, medium, strong
    flips: bool = True           # horizontal flips allowed by the policy (off where laterality matters)
    patience: int = 0            # stop after this many epochs without a lower validation loss (0: never)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """A stored config; unknown keys are ignored, and the old ``amp`` flag of studies made before
        ``precision`` existed maps to ``auto`` (amp on) or ``fp32`` (amp off)."""
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        if "precision" not in data and "amp" in data:
            kwargs["precision"] = "auto" if data["amp"] else "fp32"
        return cls(**kwargs)


@dataclass
class TrainResult:
    """The model at its best epoch, per-epoch history, and the kept epoch's validation metrics."""

    model: nn.Module
    history: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    val: dict = field(default_factory=dict)
    epoch_seconds: float = float("nan")
    device: str = "cpu"
    precision: str = "fp32"  # the resolved precision (fp32, bf16, fp16)
    channels_last: bool = False
    epoch_seconds_raw: float = float("nan")  # median wall time of the training epochs


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
    """uint8 (B, C, H, W) -> float, standardised with the training split's per-channel mean and std, or with
    stored ``stats`` (``to_dict()``; an exported folder's preprocessing): the one normaliser."""

    def __init__(self, train_images: torch.Tensor | None = None, stats: dict | None = None):
        self.mean, std = channel_stats(train_images) if stats is None else (list(stats["mean"]), list(stats["std"]))
        self.std = [max(s, 1e-3) for s in std] if stats is None else std
        self._on: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def _stats(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std on ``device``, copied there once (not a host-to-device copy per batch)."""
        key = str(device)
        if key not in self._on:
            self._on[key] = (torch.tensor(self.mean, device=device).view(1, -1, 1, 1),
                             torch.tensor(self.std, device=device).view(1, -1, 1, 1))
        return self._on[key]

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        mean, std = self._stats(images.device)
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


def batched_logits(model: nn.Module, images: torch.Tensor, normalize: Normalizer,
                   batch_size: int = 256) -> torch.Tensor:
    """fp32 logits of uint8 ``images``, normalised and run batch by batch in eval mode without gradients (the one
    inference loop: validation, test predictions, an export's operating point)."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(normalize(images[i:i + batch_size])).float()
                            for i in range(0, images.shape[0], batch_size)])
    model.train(was_training)
    return logits


def predict_probs(model: nn.Module, images: torch.Tensor, normalize: Normalizer, multilabel: bool,
                  batch_size: int = 256) -> torch.Tensor:
    """Class probabilities (softmax, or sigmoid for multi-label) for uint8 images, in eval mode."""
    logits = batched_logits(model, images, normalize, batch_size)
    probs = torch.sigmoid(logits) if multilabel else torch.softmax(logits, 1)
    if bad := nonfinite_rows(probs):  # a finite loss can hide them (inf logits): no metric or class from NaN
        raise TrainingFailed(f"non-finite predictions (NaN or infinity) for {bad} of {len(probs)} images")
    return probs


def evaluate(model: nn.Module | torch.Tensor, split: DeviceSplit, normalize: Normalizer | None, task: str,
             loss_fn: Callable, batch_size: int = 256, positive: int | None = None) -> dict:
    """Loss and metrics of ``model`` (or of its fp32 logits on ``split``, already computed) on ``split`` (the loss
    averaged batch by batch, as it always was)."""
    logits = model if isinstance(model, torch.Tensor) else batched_logits(model, split.images, normalize, batch_size)
    losses = [loss_fn(logits[start:start + batch_size], split.labels[start:start + batch_size])
              * len(split.labels[start:start + batch_size]) for start in range(0, len(split), batch_size)]
    probs = torch.sigmoid(logits) if task == "multilabel" else torch.softmax(logits, 1)
    p = probs.cpu().numpy()
    if bad := nonfinite_rows(p):  # a finite loss can hide them (inf logits); metrics of NaN mean nothing
        raise TrainingFailed(f"non-finite predictions (NaN or infinity) for {bad} of {len(p)} images")
    metrics = all_metrics(task, split.labels.cpu().numpy(), p, 1 if positive is None else positive)
    metrics["loss"] = float(torch.stack(losses).sum().item() / max(1, len(split))) if losses else 0.0
    return metrics


STEP_QUANTILE = 0.25  # epoch_seconds = training steps per epoch x this quantile of all step times


class _StepClock:
    """Step times without a host sync. On CPU: the process's CPU time per step divided by torch's threads, so
    time the scheduler gives to other processes is not counted (CPU work is synchronous: no sync needed); with
    ``own_thread``, the calling thread's CPU time (a single-threaded share of work beside others in the process).
    On CUDA: the device time between events, read at the epoch's end after its one synchronisation."""

    def __init__(self, device: torch.device, own_thread: bool = False):
        self.cuda = device.type == "cuda"
        self.enabled = device.type in ("cpu", "cuda")  # elsewhere (MPS): no step times, the wall time is used
        self.threads = 1 if own_thread else max(1, torch.get_num_threads())
        self._cpu_time = time.thread_time if own_thread else time.process_time
        self.times: list[float] = []
        self._marks: list = []

    def mark(self) -> None:
        """Called before every step and once after the last."""
        if not self.enabled:
            return
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self._marks.append(event)
        else:
            self._marks.append(self._cpu_time())

    def end_epoch(self) -> None:
        """Turn the epoch's marks into step times (the device has been synchronised)."""
        marks, self._marks = self._marks, []
        for a, b in zip(marks, marks[1:], strict=False):
            self.times.append(a.elapsed_time(b) / 1000 if self.cuda else (b - a) / self.threads)


def epoch_estimate(step_times: list[float], steps_per_epoch: int) -> float:
    """``steps_per_epoch`` x the ``STEP_QUANTILE`` quantile of ``step_times`` (nan without steps)."""
    if not step_times or steps_per_epoch < 1:
        return float("nan")
    return float(steps_per_epoch * np.quantile(np.asarray(step_times), STEP_QUANTILE))


def train(model: nn.Module, data: Dataset, cfg: TrainConfig, on_epoch: Callable[[int, dict], None] | None = None,
          soft: SoftTargets | None = None) -> TrainResult:
    """Train ``model`` on ``data.train`` for ``cfg.epochs`` (``soft``: a teacher's soft targets, ``soft_targets``),
    keep the weights of the epoch with the lowest validation loss. ``on_epoch(epoch, record)`` is called after
    every epoch (pruning raises from there). Raises TrainingFailed for a NaN/infinite loss (checked once per epoch)
    or out-of-memory. The returned model is fp32 and contiguous whatever the precision it was trained in."""
    device = pick_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
    multilabel = data.task == "multilabel"
    normalize = Normalizer(data.train.images)
    train_split = DeviceSplit(data.train, device, multilabel)
    val_split = DeviceSplit(data.val, device, multilabel)
    channels_last = precision.channels_last
    rewrites = contextlib.ExitStack()
    model = model.to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    optimizer = make_optimizer(model.parameters(), cfg.optimizer, cfg.lr, cfg.weight_decay)
    n, bs = len(train_split), cfg.batch_size
    batches = range(0, n - bs + 1 if n >= 2 * bs else n, bs)  # drop a last batch of 1 (BatchNorm)
    scheduler = make_scheduler(optimizer, cfg.schedule, cfg.warmup, cfg.epochs * len(batches))
    policy = check_policy(cfg.augment, auto=False)
    aug_gen = torch.Generator(device="cpu").manual_seed(cfg.seed + 7919) if policy != "none" else None
    loss_fn = _loss_fn(data, cfg, device)
    # loss scaling only for fp16 (its scaler reads a found-inf flag every step: one host sync per step)
    scaler = torch.amp.GradScaler(device.type, enabled=precision.needs_scaler)
    history: list[dict] = []
    best_loss, best_state, best_epoch, best_val = float("inf"), None, -1, {}
    clock = _StepClock(device)
    steps_per_epoch = 0
    try:
        model, channels_last = safe_layout(model, device, channels_last, rewrites)
        for epoch in range(cfg.epochs):
            model.train()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            order = torch.randperm(n, generator=gen).to(device)
            total = torch.zeros((), device=device)
            seen = steps = 0
            try:
                for i in batches:
                    idx = order[i:i + bs]
                    if len(idx) < 2:
                        continue
                    clock.mark()
                    x = train_split.images[idx]
                    x = normalize(x if aug_gen is None else augment_batch(x, policy, aug_gen, flips=cfg.flips)[0])
                    if channels_last:
                        x = x.contiguous(memory_format=torch.channels_last)
                    y = train_split.labels[idx]
                    with precision.context():
                        loss = loss_fn(model(x), y) if soft is None else soft.loss(model(x), y, idx, loss_fn)
                    optimizer.zero_grad(set_to_none=True)
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                    if scheduler is not None:
                        scheduler.step()
                    total += loss.detach() * len(idx)  # on the device: no sync here
                    seen += len(idx)
                    steps += 1
            except RuntimeError:
                # weights gone NaN/inf make the optimiser itself fail ("cannot be converted ... without
                # overflow"): report the non-finite loss that started it, as the per-epoch check would
                if steps and not math.isfinite(total.item()):
                    raise TrainingFailed(f"non-finite training loss ({total.item()}) at epoch {epoch}") from None
                raise
            clock.mark()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds = time.perf_counter() - start
            clock.end_epoch()
            steps_per_epoch = steps
            train_loss = total.item() / max(1, seen)  # the epoch's one read of the training loss
            if not math.isfinite(train_loss):
                raise TrainingFailed(f"non-finite training loss ({train_loss}) at epoch {epoch}")
            val = evaluate(model, val_split, normalize, data.task, loss_fn, positive=data.info.positive)
            if not np.isfinite(val["loss"]):
                raise TrainingFailed(f"non-finite validation loss at epoch {epoch}")
            record = {"epoch": epoch, "train_loss": train_loss, "val_loss": val["loss"],
                      "val_auc": val["auc"], "val_accuracy": val["accuracy"], "seconds": seconds}
            history.append(record)
            if val["loss"] < best_loss:
                best_loss, best_epoch, best_val = val["loss"], epoch, val
                best_state = copy.deepcopy(model.state_dict())
            if on_epoch is not None:
                on_epoch(epoch, record)
            if cfg.patience and epoch - best_epoch >= cfg.patience:
                break
    except torch.OutOfMemoryError as exc:
        raise TrainingFailed(f"out of memory: {str(exc).splitlines()[0]}") from None
    finally:
        rewrites.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    if channels_last:
        model = model.to(memory_format=torch.contiguous_format)
    model.eval()
    raw = statistics.median(r["seconds"] for r in history) if history else float("nan")
    estimate = epoch_estimate(clock.times, steps_per_epoch)
    return TrainResult(model, history, best_epoch, best_val, estimate if math.isfinite(estimate) else raw,
                       str(device), precision.name, channels_last, raw)
