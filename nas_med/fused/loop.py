"""``fit_many``: K training runs of one architecture (seeds, folds, recipe variants) trained together as one wide
network (``nas_med.fused.wide``), returning what K separate ``nas_med.fit.fit`` calls return.

Per copy, as in its separate run: the initial weights (``seeded_build`` with its seed), the batch order and
augmentation (the same generators, seeded alike and drawn in the same order), the normaliser, the loss (class
weights of its own training split; a teacher's soft targets where the run distils), Adam/AdamW state, learning
rate and schedule (``nas_med.fused.adam``), the BatchNorm statistics, its validation split, best epoch and
patience. A copy that has stopped (patience, fewer epochs) or has fewer batches in an epoch (a smaller fold) sits
the step out: its weights, moments and BatchNorm statistics are left as they were, so unequal folds train exactly
as alone (its share of the arithmetic is still done: the wide network keeps its K copies to the end). Dropout draws each copy's masks from a generator seeded as
its separate run seeds the global one. The deviations: the arithmetic of a grouped convolution may round
differently from a plain one, the wide network runs channels-last on the CPU whatever the precision, and a copy's
``epoch_seconds`` (and its history's ``seconds``) is its share of its wide network's time (divided by the copies
trained).

On a CPU with small images the runs train as one wide network per core (``nas_med.fused.groups``).

Separate runs are used instead, with the reason logged, where fusion does not apply: ``NAS_MED_FUSE=0``, a single
run, runs that differ in device, precision, batch size or optimiser, a training split smaller than two batches, fp16
(loss scaling), a network with a module that has no K-copy form, or K copies that would not fit in memory."""
from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import statistics
import threading
import time
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import torch

from ..arch import ArchSpec, spec_cost
from ..arch.memory import device_bytes, training_bytes
from ..augment import augment_batch, check_policy
from ..data.types import Dataset
from ..fit import fit, seeded_build
from ..precision import resolve_precision, safe_layout
from ..progress import emit
from ..schedule import lr_factor
from ..soft_targets import SoftTargets
from ..train import (
    DeviceSplit,
    Normalizer,
    TrainConfig,
    TrainingFailed,
    TrainResult,
    _loss_fn,
    _StepClock,
    epoch_estimate,
    evaluate,
    pick_device,
)
from .adam import CopyAdam
from .groups import Stopped, in_parallel_threads, thread_groups
from .wide import NotFusable, WideDropout, copy_state, per_copy_shapes, widen

__all__ = ["FUSE_ENV", "Run", "fit_many", "fusion_enabled", "why_separate"]

log = logging.getLogger(__name__)

FUSE_ENV = "NAS_MED_FUSE"  # 0 (or off/false/no): every run trains on its own
_SHARED = ("device", "precision", "batch_size", "optimizer")  # what all fused runs must have in common


@dataclass(frozen=True)
class Run:
    """One of the runs ``fit_many`` trains: ``fit(spec, data, cfg, seed, label=label)`` alone."""

    data: Dataset
    cfg: TrainConfig
    seed: int | None = None
    label: str | None = None
    soft: SoftTargets | None = None  # a teacher's soft targets for data.train (distillation)


def fusion_enabled() -> bool:
    return os.environ.get(FUSE_ENV, "1").strip().lower() not in ("0", "off", "false", "no")


def why_separate(spec: ArchSpec, runs: Sequence[Run]) -> str | None:
    """Why ``runs`` cannot train as one wide network (None when they can; a module without a K-copy form is only
    found when widening)."""
    if not fusion_enabled():
        return f"{FUSE_ENV}={os.environ.get(FUSE_ENV)}"
    if len(runs) < 2:
        return "a single run"
    if spec.torchvision:
        return f"torchvision network {spec.torchvision}"
    for name in _SHARED:
        values = {getattr(r.cfg, name) for r in runs}
        if len(values) > 1:
            return f"the runs differ in {name} ({', '.join(map(str, sorted(values, key=str)))})"
    bs = runs[0].cfg.batch_size
    if any(len(r.data.train) < 2 * bs for r in runs):
        return f"a training split smaller than two batches of {bs}"
    device = pick_device(runs[0].cfg.device)
    if device.type not in ("cpu", "cuda"):
        return f"device {device.type}"
    if resolve_precision(runs[0].cfg.precision, device).needs_scaler:
        return "fp16 needs loss scaling"
    available = device_bytes(device)
    need = training_bytes(spec_cost(spec), bs) * len(runs)
    if available is not None and need > 0.5 * available:
        return f"{len(runs)} copies need about {need / 2**30:.1f} GiB"
    return None


def fit_many(spec: ArchSpec, runs: Sequence[Run]) -> list[TrainResult]:
    """Train every run of ``runs`` (the same ``spec``) and return their TrainResults in order: fused into one
    wide network where it applies, else one ``fit`` after another (see the module docstring)."""
    runs = [replace(r, cfg=replace(r.cfg, seed=int(r.seed)), seed=None) if r.seed is not None else r for r in runs]
    reason = why_separate(spec, runs)
    if reason is None:
        try:
            return _fused_in_groups(spec, runs)
        except (NotFusable, torch.OutOfMemoryError) as exc:
            reason = str(exc).splitlines()[0]
    if len(runs) > 1:
        log.info("training %d runs of %s separately: %s", len(runs), spec.summary(), reason)
    return [fit(spec, r.data, r.cfg, label=r.label, soft=r.soft) for r in runs]


def _fused_in_groups(spec: ArchSpec, runs: list[Run]) -> list[TrainResult]:
    """The runs trained as one wide network per ``thread_groups`` group, the groups in parallel threads."""
    models = [seeded_build(spec, r.cfg.seed) for r in runs]  # the global generator: here, in this thread only
    groups = thread_groups(len(runs), spec.input_size, pick_device(runs[0].cfg.device))
    if len(groups) == 1:
        return _fused(spec, runs, models)
    log.info("training %d runs of %s as %d fused networks of %s copies, one thread each", len(runs),
             spec.summary(), len(groups), " + ".join(str(len(g)) for g in groups))
    jobs = [functools.partial(_fused, spec, [runs[i] for i in g], [models[i] for i in g]) for g in groups]
    return [result for outcome in in_parallel_threads(jobs) for result in outcome]


class _Copy:
    """One run's own state inside the fused loop."""

    def __init__(self, run: Run, device: torch.device):
        cfg, data = run.cfg, run.data
        self.cfg, self.data, self.label, self.soft = cfg, data, run.label, run.soft
        self.train = DeviceSplit(data.train, device, data.task == "multilabel")
        self.val = DeviceSplit(data.val, device, data.task == "multilabel")
        self.normalize = Normalizer(data.train.images)
        self.gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
        self.policy = check_policy(cfg.augment, auto=False)
        self.aug_gen = torch.Generator(device="cpu").manual_seed(cfg.seed + 7919) if self.policy != "none" else None
        self.dropout_gen = torch.Generator(device="cpu").manual_seed(cfg.seed)  # as train() seeds the global one
        self.loss_fn = _loss_fn(data, cfg, device)
        n, bs = len(self.train), cfg.batch_size
        self.batches = range(0, n - bs + 1, bs)  # n >= 2 * bs (why_separate): full batches only, as train()
        lr_factor(0, 1, cfg.schedule, cfg.warmup)  # validates the schedule before anything trains
        self.total_steps = cfg.epochs * len(self.batches)
        self.order = torch.arange(n, device=device)
        self.steps = 0
        self.done = cfg.epochs < 1
        self.history: list[dict] = []
        self.best_loss, self.best_epoch, self.best_val, self.best_state = math.inf, -1, {}, None


def _stack_input(xs: list[torch.Tensor], mean: torch.Tensor, std: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """K batches (B, C, H, W), uint8 or float in [0, 255] -> normalised per copy, laid out (B, K*C, H, W)."""
    x = (torch.stack([x.float() for x in xs]) / 255 - mean) / std  # (K, B, C, H, W), as Normalizer per copy
    k, b, c, h, w = x.shape
    x = x.transpose(0, 1).reshape(b, k * c, h, w)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def _fused(spec: ArchSpec, runs: list[Run], models: list[torch.nn.Module],
           stop: threading.Event | None = None) -> list[TrainResult]:
    """``runs`` trained as one wide network of ``models`` (each built with its run's seed); ``stop``: a parallel
    group's signal to stop (its own CPU time is then the step clock)."""
    cfg0 = runs[0].cfg
    device = pick_device(cfg0.device)
    precision = resolve_precision(cfg0.precision, device)
    k, bs = len(runs), cfg0.batch_size
    shapes = per_copy_shapes(models[0])
    # channels-last on the CPU in every precision: K copies make maps wide enough for it to pay (even in fp32)
    channels_last = precision.channels_last or device.type == "cpu"
    wide = widen(models).to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    copies = [_Copy(r, device) for r in runs]
    dropouts = [m for m in wide.modules() if isinstance(m, WideDropout)]
    for dropout in dropouts:
        dropout.generators = [c.dropout_gen for c in copies]
    mean = torch.stack([torch.tensor(c.normalize.mean) for c in copies]).view(k, 1, -1, 1, 1).to(device)
    std = torch.stack([torch.tensor(c.normalize.std) for c in copies]).view(k, 1, -1, 1, 1).to(device)
    params = [p for p in wide.parameters()]
    adam = CopyAdam(params, k, [c.cfg.lr for c in copies], [c.cfg.weight_decay for c in copies],
                    decoupled=cfg0.optimizer == "adamw")
    buffers = [b for name, b in wide.named_buffers() if not name.endswith("num_batches_tracked")]
    classes = spec.num_classes
    clock, rewrites = _StepClock(device, own_thread=stop is not None), contextlib.ExitStack()
    for c in copies:
        if c.label is not None:
            emit("run", 0, c.cfg.epochs, c.label)
    if stop is None:
        log.info("training %d runs of %s as one fused network", k, spec.summary())
    try:
        wide, channels_last = safe_layout(wide, device, channels_last, rewrites)
        for epoch in range(max(c.cfg.epochs for c in copies)):
            live = [not c.done for c in copies]
            if not any(live):
                break
            wide.train()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            for c, on in zip(copies, live):
                if on:
                    c.order = torch.randperm(len(c.train), generator=c.gen).to(device)
            totals = torch.zeros(k, device=device)
            seen = [0] * k
            for j in range(max(len(c.batches) for c, on in zip(copies, live) if on)):
                active = [on and j < len(c.batches) for c, on in zip(copies, live)]
                if stop is not None and stop.is_set():
                    raise Stopped()
                for dropout in dropouts:
                    dropout.active = active
                clock.mark()
                xs, ys, idxs = [], [], []
                for c, on in zip(copies, active):
                    idx = c.order[c.batches[j]:c.batches[j] + bs] if on else c.order[:bs]  # sat out: any batch
                    x = c.train.images[idx]
                    xs.append(augment_batch(x, c.policy, c.aug_gen, flips=c.cfg.flips)[0]
                              if on and c.aug_gen is not None else x)
                    ys.append(c.train.labels[idx])
                    idxs.append(idx)
                x = _stack_input(xs, mean, std, channels_last)
                saved = None if all(active) else [b.clone() for b in buffers]
                with precision.context():
                    out = wide(x).view(bs, k, classes)
                    losses = [c.loss_fn(out[:, i], ys[i]) if c.soft is None
                              else c.soft.loss(out[:, i], ys[i], idxs[i], c.loss_fn) for i, c in enumerate(copies)]
                adam.zero_grad()
                sum(loss for loss, on in zip(losses, active) if on).backward()
                if saved is not None:  # a copy sitting the step out keeps its BatchNorm statistics (after the
                    with torch.no_grad():  # backward pass, which reads them)
                        keep = torch.tensor(active, device=device)
                        for b, old in zip(buffers, saved):
                            b.copy_(torch.where(keep.repeat_interleave(b.shape[0] // k), b, old))
                adam.step(active, [lr_factor(c.steps, c.total_steps, c.cfg.schedule, c.cfg.warmup)
                                   for c in copies])
                with torch.no_grad():  # where, not a product: a sat-out copy's loss may be anything
                    totals += torch.where(torch.tensor(active, device=device),
                                          torch.stack([loss.detach() for loss in losses]) * bs, 0.0)
                for i, (c, on) in enumerate(zip(copies, active)):
                    if on:
                        c.steps += 1
                        seen[i] += bs
            clock.mark()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds = (time.perf_counter() - start) / sum(live)
            clock.end_epoch()
            _end_epoch(wide, copies, live, epoch, totals.tolist(), seen, seconds, mean, std, shapes, device)
    finally:
        rewrites.close()
    return _results(copies, models, clock, k, device, precision.name, channels_last, wide, shapes)


def _val_logits(wide: torch.nn.Module, copies: list[_Copy], mean: torch.Tensor, std: torch.Tensor,
                batch_size: int = 256) -> list[torch.Tensor]:
    """Every copy's fp32 logits on its own validation split, in eval mode (padded to the longest split)."""
    k, longest = len(copies), max(len(c.val) for c in copies)
    was = wide.training
    wide.eval()
    chunks = []
    with torch.no_grad():
        for s in range(0, longest, batch_size):
            xs = []
            for c in copies:
                x = c.val.images[s:s + batch_size]
                want = min(batch_size, longest - s)
                if x.shape[0] < want:
                    x = torch.cat([x, x.new_zeros((want - x.shape[0], *c.val.images.shape[1:]))])
                xs.append(x)
            chunks.append(wide(_stack_input(xs, mean, std, False)).float().view(xs[0].shape[0], k, -1))
    wide.train(was)
    logits = torch.cat(chunks)  # (N, K, classes)
    return [logits[:len(c.val), i] for i, c in enumerate(copies)]


def _end_epoch(wide, copies, live, epoch, totals, seen, seconds, mean, std, shapes, device) -> None:
    """Per live copy: its training loss checked, validation scored, history, best state, progress, patience."""
    logits = _val_logits(wide, copies, mean, std)
    state = None
    for i, (c, on) in enumerate(zip(copies, live)):
        if not on:
            continue
        train_loss = totals[i] / max(1, seen[i])
        if not math.isfinite(train_loss):
            raise TrainingFailed(f"non-finite training loss ({train_loss}) at epoch {epoch}")
        val = evaluate(logits[i], c.val, None, c.data.task, c.loss_fn, positive=c.data.info.positive)
        if not np.isfinite(val["loss"]):
            raise TrainingFailed(f"non-finite validation loss at epoch {epoch}")
        record = {"epoch": epoch, "train_loss": train_loss, "val_loss": val["loss"], "val_auc": val["auc"],
                  "val_accuracy": val["accuracy"], "seconds": seconds}
        c.history.append(record)
        if val["loss"] < c.best_loss:
            state = wide.state_dict() if state is None else state
            c.best_loss, c.best_epoch, c.best_val = val["loss"], epoch, val
            c.best_state = copy_state(state, shapes, len(copies), i, c.steps)
        if c.label is not None:
            emit("run", epoch + 1, c.cfg.epochs, c.label, val_loss=record["val_loss"], val_auc=record["val_auc"])
        if (c.cfg.patience and epoch - c.best_epoch >= c.cfg.patience) or epoch + 1 >= c.cfg.epochs:
            c.done = True


def _results(copies, models, clock, k, device, precision, channels_last, wide, shapes) -> list[TrainResult]:
    results = []
    for i, (c, model) in enumerate(zip(copies, models)):
        model.load_state_dict(c.best_state or copy_state(wide.state_dict(), shapes, k, i, c.steps))
        model = model.to(device).eval()
        raw = statistics.median(r["seconds"] for r in c.history) if c.history else float("nan")
        estimate = epoch_estimate(clock.times, len(c.batches)) / k
        results.append(TrainResult(model, c.history, c.best_epoch, c.best_val,
                                   estimate if math.isfinite(estimate) else raw, str(device), precision,
                                   channels_last, raw))
        if c.label is not None:
            emit("fitted", c.best_epoch + 1, len(c.history), c.label, val_loss=c.best_val.get("loss"),
                 val_auc=c.best_val.get("auc"), epochs=c.cfg.epochs)
    return results
