"""The trial record: every user-attr key nas-med writes on a trial or a study, and the helpers that read them.

Writers (the search) and readers (select, confirm, retrain, export, sweep, report, the CLI) name a key through
the constants here, never as a bare string, so that a key is spelt once and a reader cannot drift from its writer.
A trial's user attrs hold everything needed to rebuild and retrain it without the sampler (its ``SPEC`` and
``TRAIN_CONFIG``); a study's hold its resolved configuration (``CONFIG``).
"""
from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING, Sequence

from ..errors import UserError

if TYPE_CHECKING:  # the readers below import torch-side modules only when called: storage imports this module;
    # no Optuna or numpy either: the command line imports this module before it parses (`nas-med --help`)
    import optuna
    from optuna.trial import FrozenTrial

    from ..arch import ArchSpec
    from ..data.types import Dataset
    from ..train import TrainConfig

# ---- keys on a trial -------------------------------------------------------------------------------------------
KIND = "kind"                          # CANDIDATE or BASELINE_KIND
CANDIDATE, BASELINE_KIND = "candidate", "baseline"
BASELINE = "baseline"                  # a baseline's reference-network name
SPEC = "spec"                          # ArchSpec.to_dict()
SUMMARY = "summary"                    # ArchSpec.summary(), one line
TRAIN_CONFIG = "train_config"          # TrainConfig.to_dict()
PARAMS = "params"
FLOPS = "flops"
ACTIVATION_BYTES = "activation_bytes"
LAYERS = "layers"                      # leaf-module calls of one forward pass (arch.cost.spec_cost)
MEMORY_ESTIMATE = "memory_estimate"      # bytes a candidate was estimated to need before it was built
SHADOW_TRIAL = "shadow_trial"          # number of the trial in the ``<study>:pruning`` shadow study
SHADOW_OF = "trial_number"             # on a shadow trial: the real trial's number
HISTORY = "history"                    # one dict per epoch
LAST_AUC = "last_auc"                  # validation AUC at the epoch a pruned trial stopped
BEST_EPOCH = "best_epoch"              # 0-based index of the kept epoch
DEVICE = "device"
PRECISION = "precision"                # the precision it trained in (fp32, bf16, fp16), resolved
CHANNELS_LAST = "channels_last"        # whether it trained in channels-last memory format
EPOCH_SECONDS_RAW = "epoch_seconds_raw"  # median wall time of its training epochs (machine load included)
EPOCH_SECONDS_MODEL = "epoch_seconds_model"  # the cost model's epoch seconds (the objective, when it has one)
EPOCH_SECONDS_MEASURED = "epoch_seconds_measured"  # steps x low quantile of step CPU time, on this trial's machine
NORMALIZATION = "normalization"        # Normalizer.to_dict()
MASK_ENERGY = "mask_energy"
ROAD_PER_IMAGE = "road_per_image"
CAM_ARTIFACT = "cam_artifact"          # artifact id of the CAM grid PNG
CURVE_ARTIFACT = "curve_artifact"      # artifact id of the learning-curves PNG
CAM_UNSUPPORTED = "cam_unsupported"    # why a trial has no CAM
STOP_REASON = "stop_reason"            # why a trial was pruned or failed
WORKER = "worker"                      # host:pid of the worker that ran it
QUEUED = "queued"                      # a trial of the study's queued budget
SLOT = "slot"                          # its place in that budget (0, 1, ...): what it is sampled from and with
VAL_METRICS = ("accuracy", "sensitivity", "specificity", "loss")

# ---- keys on a study -------------------------------------------------------------------------------------------
CONFIG = "nas_med_config"              # the resolved SearchConfig
CONFIRMED = "nas_med_confirmed"        # {folds, front, auc: {trial: cross-validated AUC}} from `nas-med confirm`
MARKED_CHOICE = "nas_med_marked_choice"  # {trial, reason}: the trial whose dashboard note carries the choice mark
SWEEP = "sweep"                        # a sweep's definition and points
SWEEP_POINT = "sweep_point"            # {sweep, point, fraction, size}
SWEEP_RESULTS = "sweep_results"        # {architecture: tested entry}
FINAL_RECIPE = "nas_med_final_recipe"  # FinalRecipe.to_dict() from a recipe file (nas_med.final.recipe), read by later commands
RECIPE_FILE = "nas_med_recipe_file"    # {path, name}: the studies/*.yaml a study was started from
REPRODUCIBILITY = "nas_med_reproducibility"  # search.reproducibility.Record.to_dict() of the study's creator


def val_key(metric: str) -> str:
    """The key of a validation metric of the kept epoch: ``val_accuracy``, ``val_loss``, ..."""
    return f"val_{metric}"


def is_baseline(trial: FrozenTrial) -> bool:
    return trial.user_attrs.get(KIND) == BASELINE_KIND


def kind(trial: FrozenTrial) -> str:
    return BASELINE_KIND if is_baseline(trial) else CANDIDATE


def baseline_name(trial: FrozenTrial) -> str | None:
    return trial.user_attrs.get(BASELINE)


def summary(trial: FrozenTrial, default: str = "") -> str:
    return trial.user_attrs.get(SUMMARY, default)


def flops(trial: FrozenTrial) -> int | None:
    return trial.user_attrs.get(FLOPS)


def measured_epoch_seconds(trial: FrozenTrial) -> float | None:
    """The epoch time measured on the trial's own machine (the objective may be the cost model's instead)."""
    value = trial.user_attrs.get(EPOCH_SECONDS_MEASURED)
    return None if value is None else float(value)


def stop_reason(trial: FrozenTrial, default: str = "") -> str:
    return trial.user_attrs.get(STOP_REASON, default)


def stored_config(study: optuna.Study) -> dict:
    """The resolved configuration a study was created with."""
    config = study.user_attrs.get(CONFIG)
    if config is None:
        raise UserError(f"study '{study.study_name}' was not created by nas-med (no stored configuration).")
    return config


def trial_recipe(trial: FrozenTrial) -> tuple[ArchSpec, TrainConfig]:
    """The spec and training config a trial was trained with (its user attrs)."""
    from ..arch import ArchSpec
    from ..train import TrainConfig

    spec, cfg = trial.user_attrs.get(SPEC), trial.user_attrs.get(TRAIN_CONFIG)
    if spec is None or cfg is None:
        raise UserError(f"trial {trial.number} has no stored spec or training config; it was not run by nas-med.")
    return ArchSpec.from_dict(spec), TrainConfig.from_dict(cfg)


def trial_name(trial: FrozenTrial) -> str:
    """``trial 7`` for a candidate, ``minicnn (trial 0)`` for a baseline."""
    return f"{baseline_name(trial)} (trial {trial.number})" if is_baseline(trial) else f"trial {trial.number}"


def seed_list(seeds: int | Sequence[int], own: int) -> list[int]:
    """A count K -> ``own`` and the K-1 seeds after it; a sequence -> itself."""
    if isinstance(seeds, int):
        if seeds < 1:
            raise UserError(f"--seeds must be at least 1, got {seeds}.")
        return [own + i for i in range(seeds)]
    return [int(s) for s in seeds]


def load_study_data(study: optuna.Study) -> Dataset:
    """The study's dataset, loaded as the search loaded it (name, root, size, channels, fraction, seed,
    near-duplicate handling)."""
    from ..data import load_dataset
    from .config import SearchConfig

    stored = stored_config(study)
    cfg = SearchConfig.from_resolved(stored)
    try:
        data = load_dataset(cfg.dataset, data_root=cfg.data_root, size=cfg.size, channels=cfg.channels,
                            fraction=cfg.fraction, seed=cfg.seed, **cfg.splitting())
    except UserError as exc:  # (the options it names are those the study was made with)
        raise UserError(f"cannot load the data study '{study.study_name}' was searched on (stored: dataset "
                        f"{cfg.dataset}, data root {cfg.data_root}): {exc}") from None
    if cfg.positive is not None:
        from ..data.positive import positive_index

        data.info.positive = positive_index(data.task, data.name, data.classes, cfg.positive)
    info = stored.get("dataset_info") or {}
    for key, have in (("classes", list(data.classes)), ("size", data.size), ("channels", data.in_channels)):
        if key in info and info[key] != have:
            raise UserError(f"the data of study '{study.study_name}' changed since the search: {key} was "
                            f"{info[key]!r}, now {have!r}.")
    from ..data.fingerprint import require_same_data

    require_same_data(stored, data, f"the data of study '{study.study_name}' changed since the search")
    return data


def json_safe(obj):
    """A JSON-safe copy: numpy scalars become Python numbers, non-finite floats None, tuples lists."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    np = sys.modules.get("numpy")  # (not imported: no numpy scalar can be here)
    if np is not None and isinstance(obj, (np.floating, np.integer)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
