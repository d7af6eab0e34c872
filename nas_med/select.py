"""From trials to one model: the Pareto front of the four objectives and the minimalist rule.

The rule: among completed candidates whose validation AUC is within ``auc_tolerance`` of the best and whose CAM
quality is not below ``cam_floor``, take the fewest parameters; break ties by epoch time.
"""
from __future__ import annotations

from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from .search.config import DIRECTIONS, OBJECTIVES

DEFAULT_AUC_TOLERANCE = 0.01
DEFAULT_CAM_FLOOR = 0.0


def is_baseline(trial: FrozenTrial) -> bool:
    return trial.user_attrs.get("kind") == "baseline"


def completed(study: optuna.Study, baselines: bool | None = False) -> list[FrozenTrial]:
    """Completed trials; ``baselines`` False: candidates only, True: baselines only, None: both."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if baselines is None:
        return trials
    return [t for t in trials if is_baseline(t) == baselines]


def _dominates(a: FrozenTrial, b: FrozenTrial) -> bool:
    better = False
    for x, y, direction in zip(a.values, b.values, DIRECTIONS):
        if direction == "minimize":
            x, y = -x, -y
        if x < y:
            return False
        better |= x > y
    return better


def pareto_front(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """The trials no other trial dominates on all four objectives, in trial order."""
    return [t for t in trials if not any(_dominates(o, t) for o in trials if o is not t)]


def value(trial: FrozenTrial, objective: str) -> float:
    return trial.values[OBJECTIVES.index(objective)]


@dataclass
class Choice:
    trial: FrozenTrial
    reason: str


def minimalist(trials: list[FrozenTrial], auc_tolerance: float = DEFAULT_AUC_TOLERANCE,
               cam_floor: float | None = DEFAULT_CAM_FLOOR) -> Choice | None:
    """The minimalist choice among ``trials`` (None if there are none) and a sentence saying why."""
    if not trials:
        return None
    best = max(value(t, "auc") for t in trials)
    near = [t for t in trials if value(t, "auc") >= best - auc_tolerance]
    sound = [t for t in near if cam_floor is None or value(t, "cam_quality") >= cam_floor]
    floor_note = ""
    if not sound:
        sound, floor_note = near, f" (no candidate reached the CAM-quality floor {cam_floor:g}, so it was waived)"
    pick = min(sound, key=lambda t: (value(t, "params"), value(t, "epoch_seconds")))
    reason = (f"trial {pick.number} has the fewest parameters ({int(value(pick, 'params')):,}) among the "
              f"{len(sound)} candidate(s) within {auc_tolerance:g} AUC of the best ({best:.4f})"
              + (f" with CAM quality >= {cam_floor:g}" if cam_floor is not None and not floor_note else "")
              + floor_note + f"; its AUC is {value(pick, 'auc'):.4f}.")
    return Choice(pick, reason)
