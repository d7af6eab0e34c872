"""One trial: sample (or take a baseline's) spec, train with pruning, score the four objectives."""
from __future__ import annotations

import gc
import logging
import math
from pathlib import Path

import numpy as np
import optuna
import torch

from ..arch import ArchSpec, InvalidSpec, build, cam_target_layer, check
from ..data.types import Dataset
from ..objectives.cam import CamResult, evaluate_cams
from ..space import Space, sample, sample_training
from ..train import Normalizer, TrainConfig, TrainingFailed, pick_device, train
from .artifacts import save_trial_note, trial_note, upload_cam_grid
from .config import SearchConfig
from .pruning import ShadowPruning

log = logging.getLogger(__name__)


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def cam_subset(data: Dataset, n: int, seed: int) -> torch.Tensor:
    """The fixed, seeded indices of validation images on which every trial's CAMs are judged."""
    gen = torch.Generator().manual_seed(seed + 7919)
    return torch.randperm(len(data.val), generator=gen)[: min(n, len(data.val))].sort().values


class TrialObjective:
    """Callable for ``study.optimize``: returns (auc, params, epoch_seconds, cam_quality)."""

    def __init__(self, config: SearchConfig, data: Dataset, space: Space, shadow: optuna.Study | None,
                 artifact_dir: Path | None):
        self.config, self.data, self.space, self.shadow = config, data, space, shadow
        self.artifact_dir = artifact_dir
        self.normalize = Normalizer(data.train.images)
        self.cam_index = cam_subset(data, config.cam_images, config.seed)

    def __call__(self, trial: optuna.Trial) -> tuple[float, float, float, float]:
        spec = sample(trial, self.space, in_channels=self.data.in_channels, num_classes=self.data.num_classes,
                      input_size=self.data.size)
        settings = sample_training(trial, self.space)
        trial.set_user_attr("kind", "candidate")
        return self.evaluate(trial, spec, settings, shadow=self.shadow)

    def evaluate(self, trial: optuna.Trial, spec: ArchSpec, settings: dict,
                 shadow: optuna.Study | None = None) -> tuple[float, float, float, float]:
        """Train and score ``spec`` as ``trial``; invalid specs are pruned, untrainable ones fail, with reasons."""
        trial.set_user_attr("spec", spec.to_dict())
        trial.set_user_attr("summary", spec.summary())
        try:
            check(spec)
        except InvalidSpec as exc:
            return self._stop(trial, f"invalid architecture: {exc}", pruned=True)
        if spec.input_size != self.data.size:
            return self._stop(trial, f"input size {spec.input_size} differs from the data's {self.data.size} px",
                              pruned=True)
        cfg = TrainConfig(epochs=self.config.epochs, lr=settings["lr"], batch_size=int(settings["batch_size"]),
                          weight_decay=settings["weight_decay"], class_weighting=self.config.class_weighting,
                          device=self.config.device, seed=self.config.seed + trial.number)
        trial.set_user_attr("train_config", cfg.to_dict())
        torch.manual_seed(cfg.seed)  # initial weights from the trial's seed, so a retrain repeats the trial
        model = build(spec)
        params = count_params(model)
        trial.set_user_attr("params", params)
        self._record_cost(trial, spec)
        pruning = ShadowPruning(shadow, trial) if shadow is not None else None

        def on_epoch(epoch: int, record: dict) -> None:
            if pruning is not None and pruning.report(record["val_auc"], epoch):
                trial.set_user_attr("history", history_so_far + [record])
                pruning.finish(pruned=True)
                self._stop(trial, f"pruned by the {self.config.pruner} pruner at epoch {epoch} "
                                  f"(validation AUC {record['val_auc']:.4f})", pruned=True, last_auc=record["val_auc"])
            history_so_far.append(record)

        history_so_far: list[dict] = []
        try:
            result = train(model, self.data, cfg, on_epoch=on_epoch)
        except TrainingFailed as exc:
            trial.set_user_attr("history", history_so_far)
            if pruning is not None:
                pruning.finish(None)
            self._stop(trial, str(exc), pruned=False)
            raise
        finally:
            del model
            self._release()
        values = self._score(trial, spec, result)
        if pruning is not None:
            pruning.finish(values[0])
        return values

    def _score(self, trial: optuna.Trial, spec: ArchSpec, result) -> tuple[float, float, float, float]:
        device = pick_device(self.config.device)
        images = self.data.val.images[self.cam_index]
        masks = None if self.data.val.masks is None else self.data.val.masks[self.cam_index]
        layer = cam_target_layer(result.model, spec)
        if layer is None:  # token models (ViT, Swin) or maps below 2x2: no CAM, scored as a random map would be
            trial.set_user_attr("cam_unsupported", "no feature map of at least 2x2 for Grad-CAM")
            cam = CamResult(0.0, np.zeros(len(images)), float("nan"), np.zeros((len(images), *images.shape[-2:])), [])
        else:
            cam = evaluate_cams(result.model, self.normalize(images.to(device)), masks, self.config.cam_method, layer)
        auc, params, seconds = result.val["auc"], trial.user_attrs["params"], result.epoch_seconds
        trial.set_user_attr("history", result.history)
        trial.set_user_attr("best_epoch", result.best_epoch)
        trial.set_user_attr("device", result.device)
        trial.set_user_attr("normalization", self.normalize.to_dict())
        for key in ("accuracy", "sensitivity", "specificity", "loss"):
            trial.set_user_attr(f"val_{key}", _finite(result.val.get(key)))
        trial.set_user_attr("mask_energy", _finite(cam.mask_energy))
        trial.set_user_attr("road_per_image", [round(float(v), 5) for v in cam.road_per_image])
        values = (float(auc), float(params), float(seconds), float(cam.cam_quality))
        art = None
        if self.artifact_dir is not None and self.config.artifacts:
            try:
                art = upload_cam_grid(trial, self.artifact_dir, images.numpy(), cam.cams)
                trial.set_user_attr("cam_artifact", art)
            except OSError as exc:
                log.warning("could not store the CAM grid of trial %d: %s", trial.number, exc)
        save_trial_note(trial, trial_note(trial.user_attrs["summary"], dict(zip(
            ("auc", "params", "epoch_seconds", "cam_quality"), values)), cam_artifact=art))
        del result
        self._release()
        return values

    def _record_cost(self, trial: optuna.Trial, spec: ArchSpec) -> None:
        try:
            from ..arch.cost import spec_cost

            cost = spec_cost(spec)
            trial.set_user_attr("flops", int(cost["flops"]))
            trial.set_user_attr("activation_bytes", int(cost.get("activation_bytes", 0)))
        except Exception as exc:  # a cost that cannot be counted never stops a trial
            log.debug("cost of trial %d not counted: %s", trial.number, exc)

    def _stop(self, trial: optuna.Trial, reason: str, pruned: bool, last_auc: float | None = None):
        trial.set_user_attr("stop_reason", reason)
        if last_auc is not None:
            trial.set_user_attr("last_auc", float(last_auc))
        save_trial_note(trial, trial_note(trial.user_attrs.get("summary", "?"), None, reason))
        if pruned:
            raise optuna.TrialPruned(reason)

    @staticmethod
    def _release() -> None:
        """Give a finished candidate's GPU memory back (a full collection costs ~0.3 s, so only on CUDA)."""
        if torch.cuda.is_available():
            gc.collect()
            torch.cuda.empty_cache()


def _finite(value) -> float | None:
    return float(value) if value is not None and math.isfinite(float(value)) else None


