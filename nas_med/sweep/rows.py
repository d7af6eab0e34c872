"""Reading a sweep back from storage alone: its point studies and one row per point and architecture."""
from __future__ import annotations

import math
from typing import Iterable

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..errors import UserError
from ..search import records
from .config import MINIMALIST

__all__ = ["FINISHED", "sweep_of", "sweep_rows", "sweep_studies"]

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def sweep_of(study: optuna.Study) -> str | None:
    """The name of the sweep ``study`` belongs to, or None."""
    return (study.user_attrs.get(records.SWEEP_POINT) or {}).get("sweep")


def sweep_studies(name: str, storage: str | optuna.storages.BaseStorage | None = None) -> list[optuna.Study]:
    """Every point study of sweep ``name`` in ``storage``, by size then fraction; UserError if there is none."""
    from ..search.storage import mask_url, open_storage

    store = storage if isinstance(storage, optuna.storages.BaseStorage) else open_storage(storage)
    found = []
    for s in optuna.get_all_study_summaries(store, include_best_trial=False):
        point = s.user_attrs.get(records.SWEEP_POINT) or {}
        if point.get("sweep") == name:
            found.append(((point.get("size") or 0, point.get("fraction", 0)), s.study_name))
    if not found:
        where = mask_url(storage) if isinstance(storage, str) else "the storage"
        raise UserError(f"no study of sweep '{name}' in {where}.")
    return [optuna.load_study(study_name=n, storage=store) for _, n in sorted(found)]


def _stages(spec: dict | None) -> tuple[int | None, int | None, str]:
    """(stages, total blocks, 'stages x depth' label) of a spec dict; Nones for a torchvision spec."""
    stages = (spec or {}).get("stages") or []
    if not stages:
        return None, None, ""
    depths = [int(s["depth"]) for s in stages]
    label = f"{len(depths)}x{depths[0]}" if len(set(depths)) == 1 else "+".join(map(str, depths))
    return len(depths), sum(depths), label


def _stat(test: dict, metric: str) -> tuple[float | None, float | None, float | None]:
    s = (test or {}).get(metric) or {}
    return s.get("mean"), s.get("ci_low"), s.get("ci_high")


def sweep_rows(studies: Iterable[optuna.Study]) -> list[dict]:
    """One row per point and architecture (the minimalist choice, then each requested baseline), from storage."""
    rows = []
    for study in studies:
        point, cfg = study.user_attrs.get(records.SWEEP_POINT) or {}, study.user_attrs.get(records.CONFIG) or {}
        results = study.user_attrs.get(records.SWEEP_RESULTS) or {}
        trials = study.get_trials(deepcopy=False)
        cands = [t for t in trials if not records.is_baseline(t)]
        base = {"sweep": point.get("sweep"), "study": study.study_name, "point": point.get("point"),
                "fraction": point.get("fraction", cfg.get("fraction")),
                "size": point.get("size") or cfg.get("size") or (cfg.get("dataset_info") or {}).get("size"),
                "train_images": ((cfg.get("dataset_info") or {}).get("counts") or {}).get("train"),
                "trials": len(cands), "completed": sum(t.state == TrialState.COMPLETE for t in cands)}
        for arch in [MINIMALIST, *cfg.get("baselines", [])]:
            r = results.get(arch)
            row = dict(base, architecture=arch)
            if r is None:
                row["summary"] = ("no completed candidate" if arch == MINIMALIST
                                  else _baseline_note(trials, arch))
                rows.append(row)
                continue
            stages, blocks, label = _stages(r.get("spec"))
            auc, auc_lo, auc_hi = _stat(r["test"], "auc")
            acc, acc_lo, acc_hi = _stat(r["test"], "accuracy")
            epoch = _stat(r["test"], "epoch_seconds")[0]
            row.update(trial=r["trial"], summary=r["summary"], params=r["params"], flops=r.get("flops"),
                       stages=stages, blocks=blocks, depth=label,
                       epoch_seconds=epoch if epoch is not None else r.get("search_epoch_seconds"),
                       test_auc=auc, test_auc_low=auc_lo, test_auc_high=auc_hi,
                       test_accuracy=acc, test_accuracy_low=acc_lo, test_accuracy_high=acc_hi,
                       test_sensitivity=_stat(r["test"], "sensitivity")[0],
                       test_specificity=_stat(r["test"], "specificity")[0],
                       cam_quality=r.get("cam_quality"), val_auc=r.get("val_auc"),
                       seeds=len(r.get("seeds", [])), why=r.get("why"))
            rows.append(row)
    return [{k: round(v, 6) if isinstance(v, float) and math.isfinite(v) else v for k, v in r.items()} for r in rows]


def _baseline_note(trials: list[FrozenTrial], name: str) -> str:
    runs = [t for t in trials if records.baseline_name(t) == name]
    if not runs:
        return "not run"
    last = runs[-1]
    return f"{last.state.name.lower()}: {records.stop_reason(last, 'no reason recorded')}"


