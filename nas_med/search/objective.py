"""One trial: sample (or take a baseline's) spec, train with pruning, score the four objectives."""
from __future__ import annotations

import gc
import logging
import math
from pathlib import Path

import numpy as np
import optuna
import torch

from ..arch import ArchSpec, InvalidSpec, cam_target_layer, check, count_params
from ..arch.memory import MemoryTooLarge, check_fits
from ..data.types import Dataset
from ..fit import seeded_build
from ..objectives.cam import CamResult, evaluate_cams
from ..objectives.epoch_cost import CostModel, EpochWork
from ..objectives.overlay import class_captions
from ..precision import resolve_precision
from ..progress import emit
from ..space import Space, sample, sample_training
from ..train import Normalizer, TrainConfig, TrainingFailed, pick_device, train
from . import interrupts, records
from .artifacts import note_of, save_trial_note, trial_note, upload_cam_grid, upload_learning_curves
from .batches import batch_start, before
from .config import SearchConfig
from .pruning import ShadowPruning
from .storage import set_user_attrs

log = logging.getLogger(__name__)


def cam_subset(data: Dataset, n: int, seed: int) -> torch.Tensor:
    """The fixed, seeded indices of validation images on which every trial's CAMs are judged."""
    gen = torch.Generator().manual_seed(seed + 7919)
    return torch.randperm(len(data.val), generator=gen)[: min(n, len(data.val))].sort().values


class TrialObjective:
    """Callable for ``study.optimize``: returns (auc, params, epoch_seconds, cam_quality). ``epoch_seconds`` is
    ``cost_model``'s (the same on every machine and load); without one (studies from before), the measured time."""

    def __init__(self, config: SearchConfig, data: Dataset, space: Space, shadow: optuna.Study | None,
                 artifact_dir: Path | None, cost_model: CostModel | None = None):
        self.config, self.data, self.space, self.shadow = config, data, space, shadow
        self.artifact_dir = artifact_dir
        self.cost_model = cost_model
        self.normalize = Normalizer(data.train.images)
        self.cam_index = cam_subset(data, config.cam_images, config.seed)

    def __call__(self, trial: optuna.Trial) -> tuple[float, float, float, float]:
        spec = sample(trial, self.space, in_channels=self.data.in_channels, num_classes=self.data.num_classes,
                      input_size=self.data.size)
        settings = sample_training(trial, self.space)
        return self.evaluate(trial, spec, settings, shadow=self.shadow, attrs={records.KIND: records.CANDIDATE})

    def evaluate(self, trial: optuna.Trial, spec: ArchSpec, settings: dict, shadow: optuna.Study | None = None,
                 attrs: dict | None = None) -> tuple[float, float, float, float]:
        """Train and score ``spec`` as ``trial``; invalid specs are pruned, untrainable ones fail, with reasons.
        ``attrs``: extra user attrs for the trial. User attrs are written in two batches: before training and
        when the trial ends."""
        attrs = {**(attrs or {}), records.SPEC: spec.to_dict(), records.SUMMARY: spec.summary()}
        try:
            check(spec)
        except InvalidSpec as exc:
            return self._stop(trial, attrs, f"invalid architecture: {exc}", pruned=True)
        except (TypeError, ValueError, OverflowError, RuntimeError, MemoryError) as exc:  # e.g. widths past int64
            reason = f"cannot be built: {_first_line(exc)}"
            self._stop(trial, attrs, reason, pruned=False)
            raise TrainingFailed(reason) from None
        if spec.input_size != self.data.size:
            return self._stop(trial, attrs, f"input size {spec.input_size} differs from the data's "
                                            f"{self.data.size} px", pruned=True)
        slot = trial.user_attrs.get(records.SLOT)  # a re-queued trial keeps its slot, and so its seed
        cfg = TrainConfig(epochs=self.config.epochs, lr=settings["lr"], batch_size=int(settings["batch_size"]),
                          weight_decay=settings["weight_decay"], class_weighting=self.config.class_weighting,
                          device=self.config.device, precision=self.config.precision,
                          seed=self.config.seed + (trial.number if slot is None else int(slot)),
                          augment=settings.get("augment", "none"))
        cost = _cost(spec, trial.number)
        if self.cost_model is not None:
            attrs[records.EPOCH_SECONDS_MODEL] = self._modelled_seconds(trial, cost, cfg, attrs)
        model = self._build(trial, spec, cfg, cost, attrs)
        attrs.update({records.TRAIN_CONFIG: cfg.to_dict(), records.PARAMS: count_params(model),
                      **{k: cost[k] for k in (records.FLOPS, records.ACTIVATION_BYTES, records.LAYERS) if k in cost}})
        attrs[records.PRECISION] = resolve_precision(cfg.precision, pick_device(cfg.device)).name
        pruning = None if shadow is None else ShadowPruning(shadow, trial, cost=attrs,
                                                            visible=self._visible_to(trial))
        if pruning is not None:
            attrs[records.SHADOW_TRIAL] = pruning.number
        set_user_attrs(trial, attrs)
        history: list[dict] = []
        emit("trial", 0, cfg.epochs, spec.summary(), trial=trial.number)  # the display's running-trial line

        def on_epoch(epoch: int, record: dict) -> None:
            history.append(record)
            emit("epoch", epoch + 1, cfg.epochs, spec.summary(), trial=trial.number, val_auc=record["val_auc"])
            interrupts.check()
            if pruning is not None and pruning.report(record["val_auc"], epoch):
                pruning.finish(pruned=True)
                self._stop(trial, {records.HISTORY: history, records.LAST_AUC: float(record["val_auc"])},
                           f"pruned by the {self.config.pruner} pruner at epoch {epoch} "
                           f"(validation AUC {record['val_auc']:.4f})", pruned=True)

        try:
            result = train(model, self.data, cfg, on_epoch=on_epoch)
        except TrainingFailed as exc:
            if pruning is not None:
                pruning.finish(None)
            self._stop(trial, {records.HISTORY: history}, str(exc), pruned=False)
            raise
        finally:
            del model
            self._release()
        values = self._score(trial, spec, result)
        if pruning is not None:
            pruning.finish(values[0])
        return values

    def _modelled_seconds(self, trial: optuna.Trial, cost: dict, cfg: TrainConfig, attrs: dict) -> float:
        """The cost model's epoch seconds of this candidate (a candidate it cannot count fails, with the reason)."""
        if not cost:
            reason = "its cost (FLOPs, layers) cannot be counted, so its epoch time cannot be modelled"
            self._stop(trial, {**attrs, records.TRAIN_CONFIG: cfg.to_dict()}, reason, pruned=False)
            raise TrainingFailed(reason)
        images = self.data.train.images
        work = EpochWork.of(cost, cfg.batch_size, len(images), int(np.prod(images.shape[1:])),
                            augmented=cfg.augment != "none")
        return self.cost_model.epoch_seconds(work)

    def _visible_to(self, trial: optuna.Trial):
        """Which shadow trials this trial's pruning may compare with: with batched proposals, those of earlier
        batches only (what has finished meanwhile elsewhere must not matter); otherwise all."""
        slot, batch = trial.user_attrs.get(records.SLOT), self.config.trial_batch
        if not batch or slot is None:
            return None
        start = batch_start(int(slot), batch)
        return lambda shadow_trial: before(shadow_trial, start)

    def _build(self, trial: optuna.Trial, spec: ArchSpec, cfg: TrainConfig, cost: dict, attrs: dict):
        """``build(spec)`` once its estimated memory fits the device; a candidate too large for it (estimated,
        or refused by the allocator) fails with the reason (TrainingFailed), as training's out of memory does."""
        device = pick_device(self.config.device)
        try:
            if records.PARAMS in cost:
                attrs[records.MEMORY_ESTIMATE] = check_fits(cost, cfg.batch_size, device)
            return seeded_build(spec, cfg.seed)  # initial weights from the trial's seed: a retrain repeats it
        except MemoryTooLarge as exc:
            reason = str(exc)
        except Exception as exc:  # noqa: BLE001 - a checked spec that cannot be built is a candidate that cannot run
            text = _first_line(exc)
            memory = isinstance(exc, (torch.OutOfMemoryError, MemoryError)) or _allocation_failure(text)
            reason = f"out of memory while building the model: {text}" if memory else f"cannot be built: {text}"
        self._release()
        self._stop(trial, {**attrs, records.TRAIN_CONFIG: cfg.to_dict()}, reason, pruned=False)
        raise TrainingFailed(reason)

    def _score(self, trial: optuna.Trial, spec: ArchSpec, result) -> tuple[float, float, float, float]:
        device = pick_device(self.config.device)
        images = self.data.val.images[self.cam_index]
        masks = None if self.data.val.masks is None else self.data.val.masks[self.cam_index]
        layer = cam_target_layer(result.model, spec)
        attrs: dict = {}
        if layer is None:  # token models (ViT, Swin) or maps below 2x2: no CAM, scored as a random map would be
            attrs[records.CAM_UNSUPPORTED] = "no feature map of at least 2x2 for Grad-CAM"
            cam = CamResult(0.0, np.zeros(len(images)), float("nan"), np.zeros((len(images), *images.shape[-2:])), [])
        else:
            cam = evaluate_cams(result.model, self.normalize(images.to(device)), masks, self.config.cam_method, layer)
        modelled = trial.user_attrs.get(records.EPOCH_SECONDS_MODEL)
        epoch_seconds = float(result.epoch_seconds) if modelled is None else float(modelled)
        values = (float(result.val["auc"]), float(trial.user_attrs[records.PARAMS]), epoch_seconds,
                  float(cam.cam_quality))
        attrs.update({records.PRECISION: result.precision, records.CHANNELS_LAST: result.channels_last,
                      records.EPOCH_SECONDS_MEASURED: _finite(result.epoch_seconds),
                      records.EPOCH_SECONDS_RAW: _finite(result.epoch_seconds_raw)})
        attrs.update({records.HISTORY: result.history, records.BEST_EPOCH: result.best_epoch,
                      records.DEVICE: result.device, records.NORMALIZATION: self.normalize.to_dict(),
                      records.MASK_ENERGY: _finite(cam.mask_energy),
                      records.ROAD_PER_IMAGE: [round(float(v), 5) for v in cam.road_per_image],
                      **{records.val_key(key): _finite(result.val.get(key)) for key in records.VAL_METRICS}})
        if self.artifact_dir is not None and self.config.artifacts:
            try:
                captions = (class_captions(self.data.classes, self.data.val.labels[self.cam_index].numpy(),
                                           cam.targets) if cam.targets else None)
                attrs[records.CAM_ARTIFACT] = upload_cam_grid(trial, self.artifact_dir, images.numpy(), cam.cams,
                                                              captions=captions)
            except OSError as exc:
                log.warning("could not store the CAM grid of trial %d: %s", trial.number, exc)
            try:
                attrs[records.CURVE_ARTIFACT] = upload_learning_curves(trial, self.artifact_dir, result.history,
                                                                       result.best_epoch)
            except OSError as exc:
                log.warning("could not store the learning curves of trial %d: %s", trial.number, exc)
        set_user_attrs(trial, attrs)
        save_trial_note(trial, note_of(trial, values, attrs))
        del result
        self._release()
        return values

    def _stop(self, trial: optuna.Trial, attrs: dict, reason: str, pruned: bool):
        """Record why ``trial`` stops (with ``attrs``); raise TrialPruned when ``pruned``."""
        set_user_attrs(trial, {**attrs, records.STOP_REASON: reason})
        save_trial_note(trial, trial_note(records.summary(trial, "?"), None, reason))
        if pruned:
            raise optuna.TrialPruned(reason)

    @staticmethod
    def _release() -> None:
        """Give a finished candidate's GPU memory back (a full collection costs ~0.3 s, so only on CUDA)."""
        if torch.cuda.is_available():
            gc.collect()
            torch.cuda.empty_cache()


def _cost(spec: ArchSpec, number: int) -> dict:
    """Parameters, FLOPs, activation bytes and layers of ``spec``, counted on the meta device (empty when they
    cannot be counted: then only a study whose epoch time is modelled stops the trial)."""
    try:
        from ..arch.cost import spec_cost

        cost = spec_cost(spec)
        return {records.PARAMS: int(cost["params"]), records.FLOPS: int(cost["flops"]),
                records.ACTIVATION_BYTES: int(cost.get("activation_bytes", 0)), records.LAYERS: int(cost["layers"])}
    except Exception as exc:
        log.debug("cost of trial %d not counted: %s", number, exc)
        return {}


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip() or type(exc).__name__).splitlines()[0][:300]


def _allocation_failure(text: str) -> bool:
    """Whether a RuntimeError's text is the allocator refusing memory (CPU: "can't allocate memory")."""
    low = text.lower()
    return any(k in low for k in ("allocate", "out of memory", "not enough memory", "bad_alloc", "overflow"))


def _finite(value) -> float | None:
    return float(value) if value is not None and math.isfinite(float(value)) else None


