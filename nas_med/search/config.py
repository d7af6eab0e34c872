"""``SearchConfig``: everything that defines a study; its resolved form is stored on the study."""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, fields

from ..defaults import CAM_METHOD_NAMES, DUPLICATE_MODES, PRECISIONS
from ..errors import UserError, look_up
from .names import slug

SAMPLERS = ("tpe", "nsga2", "nsga3", "random", "gp")
PRUNERS = ("median", "pareto", "hyperband", "sha", "percentile", "none")
OBJECTIVES = ("auc", "params", "epoch_seconds", "cam_quality")
DIRECTIONS = ("maximize", "minimize", "minimize", "maximize")
# how cam_quality is scored (objectives.cam: Grad-CAM at a map >= 4x4, ROAD MoRF drop of exactly the top 5 % / 2 %
# of pixels); a study scored another way (before this key existed: ROADCombined at 30-70 %; then "road-morf-95-98"
# at a 2x2 map with grad-cam's thresholds) cannot be resumed, its values would not compare
CAM_SCORE = "gradcam4-road-morf-top5-top2"
OLD_CAM_SCORE = "road-combined-30-70"
EPOCH_COST_MODEL = "epoch_cost_model"  # key of the stored cost model (objectives.epoch_cost.CostModel.to_dict())
EPOCH_TIMES = ("model", "measured")  # epoch_seconds from the cost model (repeats exactly) or measured (does not)
# settings that make two runs of one study incomparable; the rest (trials, timeout, device, ...) may change
IDENTITY_KEYS = ("dataset", "fraction", "size", "channels", "seed", "space", "epochs", "cam_images", "cam_method",
                 "class_weighting", "split_ratios", "group_regex", "group_csv")


RUN_ONLY = ("quiet", "workers", "gpus", "init_only", "size_reason", "parallel_reason")  # SearchConfig fields not stored

@dataclass
class SearchConfig:
    """The arguments of ``nas-med search``; ``resolved()`` is what is stored on the study."""

    dataset: str = "synthetic"
    data_root: str | None = None
    split_ratios: tuple[float, float, float] | None = None  # folder: datasets (data.folder)
    group_regex: str | None = None
    group_csv: str | None = None
    fraction: float = 1.0
    size: int | None = None
    channels: int | None = None
    space: str = "default"
    trials: int = 24
    timeout: float | None = None
    study: str | None = None
    storage: str | None = None
    sampler: str = "tpe"
    pruner: str = "median"
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # nas_med.precision: auto, fp32, bf16, fp16 (not an identity key: old studies resume)
    epochs: int = 8
    baselines: tuple[str, ...] = ()
    cam_images: int = 64  # objectives.cam.CAM_IMAGES (not imported here: grad-cam is slow to import)
    cam_method: str = "gradcam"
    class_weighting: bool = False
    positive: str | None = None            # binary tasks: the class whose recall is the sensitivity (None: default)
    duplicates: str = "group"              # data.duplicates: keep|group|drop (a study stored without it: keep)
    workers: int | None = 1  # local worker processes (None: search.parallel chooses)
    # reproducibility (search.reproducibility): fixed when the study is created, read back by workers and resumes
    epoch_time: str = "model"      # EPOCH_TIMES
    threads: int | None = None     # torch CPU threads of every trial (None: this machine's cores, when created)
    trial_batch: int = 4           # trials sampled together from the trials of earlier batches (0: as each starts)
    quiet: bool = False
    artifacts: bool = True
    # how this run goes, not stored with the study
    gpus: tuple[int, ...] = ()     # one local worker per GPU (CUDA_VISIBLE_DEVICES), round-robin (--gpus)
    init_only: bool = False        # create the study and queue its trials; workers started elsewhere run them
    size_reason: str | None = None  # why a folder's image size was chosen (shown before the search)
    parallel_reason: str | None = None  # workers and threads per trial, and why (search.parallel)

    def validate(self) -> SearchConfig:
        """Check every value before anything is written; raises UserError naming the bad value."""
        if self.trials < 1:
            raise UserError(f"--trials must be at least 1, got {self.trials}.")
        if self.epochs < 1:
            raise UserError(f"--epochs must be at least 1, got {self.epochs}.")
        if self.timeout is not None and self.timeout <= 0:
            raise UserError(f"--timeout must be positive seconds, got {self.timeout}.")
        if not 0 < self.fraction <= 1:
            raise UserError(f"--fraction must be in (0, 1], got {self.fraction}.")
        if self.workers is not None and self.workers < 1:
            raise UserError(f"--workers must be at least 1, got {self.workers}.")
        if self.threads is not None and not 1 <= self.threads <= 4096:
            raise UserError(f"--threads must be between 1 and 4096, got {self.threads}.")
        if not 0 <= self.trial_batch <= 10_000:
            raise UserError(f"--trial-batch must be between 0 and 10000, got {self.trial_batch}.")
        look_up(self.epoch_time, EPOCH_TIMES, "epoch time")
        if self.cam_images < 2:
            raise UserError(f"--cam-images must be at least 2, got {self.cam_images}.")
        if self.duplicates not in DUPLICATE_MODES:  # (names from defaults: no torch before the search starts)
            raise UserError(f"--duplicates must be one of {', '.join(DUPLICATE_MODES)}, got '{self.duplicates}'.")
        look_up(self.sampler, SAMPLERS, "sampler")
        look_up(self.pruner, PRUNERS, "pruner")
        look_up(self.precision, PRECISIONS, "precision")
        look_up(self.cam_method, CAM_METHOD_NAMES, "CAM method")
        if self.baselines:
            from ..arch.baselines import BASELINES

            for name in self.baselines:
                look_up(name, BASELINES, "baseline")
        if self.study is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:+-]{0,199}", str(self.study)):
            shown = str(self.study) if len(str(self.study)) <= 60 else f"{str(self.study)[:40]}... ({len(self.study)} characters)"
            raise UserError(f"--study {shown!r} may hold only letters, digits and _.:+- characters, starting with a "
                            f"letter or digit, at most 200.")
        if not 0 <= self.seed < 2**32 or (self.timeout is not None and not math.isfinite(self.timeout)):
            raise UserError(f"--seed must be in [0, 2**32) and --timeout finite, got {self.seed} and {self.timeout}.")
        return self

    def splitting(self) -> dict:
        """How a dataset is split (folder ratios and groups, near-duplicates), as ``data.load_dataset`` takes it."""
        ratios = None if self.split_ratios is None else tuple(float(r) for r in self.split_ratios)
        return {"split_ratios": ratios, "group_regex": self.group_regex, "group_csv": self.group_csv,
                "duplicates": self.duplicates}

    def study_name(self) -> str:
        """The given name, or one derived from dataset, size and fraction."""
        if self.study:
            return self.study
        dataset = slug(self.dataset, limit=200)
        size = f"-{self.size}px" if self.size else ""
        fraction = f"-f{self.fraction:g}" if self.fraction != 1 else ""
        return f"{dataset}{size}{fraction}"

    def resolved(self, space_dict: dict, dataset_info: dict, data_fingerprint: dict | None = None) -> dict:
        """The configuration stored on the study: identity settings, the full space, the data's fingerprint
        (``data.fingerprint``) and the versions."""
        import optuna
        import torch

        from .._version import __version__

        data = {k: v for k, v in asdict(self).items() if k not in RUN_ONLY}
        data["baselines"] = list(self.baselines)
        data["split_ratios"] = None if self.split_ratios is None else [float(r) for r in self.split_ratios]
        data.update(cam_score=CAM_SCORE, space_definition=space_dict, dataset_info=dataset_info,
                    versions={"nas_med": __version__, "optuna": optuna.__version__, "torch": torch.__version__})
        if data_fingerprint is not None:
            data["data_fingerprint"] = data_fingerprint
        if self.epoch_time == "model":
            from ..objectives.epoch_cost import REFERENCE_CPU

            data[EPOCH_COST_MODEL] = REFERENCE_CPU.to_dict()
        return data

    @classmethod
    def from_resolved(cls, data: dict) -> SearchConfig:
        """Rebuild the config of a stored study (so a worker needs only the study name and storage)."""
        names = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names}
        kwargs["baselines"] = tuple(kwargs.get("baselines", ()))
        # a study made before these settings existed measured its epoch times and sampled each trial as it started,
        # and split its data without near-duplicate groups
        kwargs.setdefault("epoch_time", "measured")
        kwargs.setdefault("trial_batch", 0)
        kwargs.setdefault("duplicates", "keep")
        return cls(**kwargs)


def stored_cost_model(stored: dict):
    """The epoch-time cost model a study scores with (``objectives.epoch_cost.CostModel``), None if it measures."""
    if stored.get("epoch_time", "measured") != "model":
        return None
    from ..objectives.epoch_cost import CostModel

    return CostModel.from_dict(stored[EPOCH_COST_MODEL])


def _same_folder(key: str, stored, new) -> bool:
    """A study made before dataset paths were stored absolute (``folder:imgs``) resumes as ``folder:/abs/imgs``."""
    from pathlib import Path

    if key != "dataset" or not all(isinstance(v, str) and v.startswith("folder:") for v in (stored, new)):
        return False
    return Path(stored[7:]).expanduser().absolute() == Path(new[7:]).expanduser().absolute()


def differences(stored: dict, new: dict) -> list[str]:
    """Human-readable list of identity settings that differ between a stored and a new configuration."""
    out = []
    for key in IDENTITY_KEYS:
        if stored.get(key) != new.get(key) and not _same_folder(key, stored.get(key), new.get(key)):
            out.append(f"{key}: stored {stored.get(key)!r}, given {new.get(key)!r}")
    if "cam_score" in new and stored.get("cam_score", OLD_CAM_SCORE) != new["cam_score"]:
        out.append(f"cam_quality: the study scored it as {stored.get('cam_score', OLD_CAM_SCORE)}, this nas-med "
                   f"scores {new['cam_score']}")
    # the positive class conflicts only when given again differently (older studies have none stored)
    if new.get("positive") is not None and stored.get("positive") not in (None, new.get("positive")):
        out.append(f"positive: stored {stored.get('positive')!r}, given {new.get('positive')!r}")
    if stored.get("space_definition") != new.get("space_definition"):
        out.append("space: the search-space definition differs from the stored one")
    # a study made before fingerprints were stored has none: it resumes as before
    from ..data.fingerprint import fingerprint_differences

    out.extend(fingerprint_differences(stored.get("data_fingerprint"), new.get("data_fingerprint")))
    return out
