"""From trials to one model: the Pareto front of the four objectives and the minimalist rule.

The minimalist rule: among completed candidates whose validation AUC is within ``auc_tolerance`` (default 0.01)
of the best and whose CAM quality is not below ``cam_floor`` (default 0.0; None disables it, and if no candidate
reaches the floor it is waived, and the reason says so), take the fewest parameters; break ties by epoch time.

``prefer`` changes what "best" means among those near-best candidates:

* a list of objectives, ``"epoch_seconds"`` or ``"flops,params"``: lexicographic, the first decides and the next
  break ties (``--prefer epoch_seconds`` picks the fastest of the near-best instead of the smallest);
* weights, ``"params:2,epoch_seconds:1"``: a weighted rank; every near-best candidate is ranked per objective
  (0 = best, 1 = worst, ties share the mean rank) and the lowest weighted mean rank wins.

Remaining ties always fall to fewer parameters, then shorter epochs, then the lower trial number.
Objectives one can prefer: params, epoch_seconds, flops (user attr), cam_quality, auc.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

from .errors import UserError, look_up
from .search import records
from .search.config import DIRECTIONS, OBJECTIVES
from .search.records import is_baseline

if TYPE_CHECKING:  # no Optuna or numpy at import: the command line's options read this module before parsing
    import optuna
    from optuna.trial import FrozenTrial

__all__ = ["Choice", "DEFAULT_AUC_TOLERANCE", "DEFAULT_CAM_FLOOR", "PREFERABLE", "Preference", "choose",
           "completed", "confirmed_aucs", "front_numbers", "is_baseline", "metric", "minimalist", "parse_prefer",
           "pareto_front", "study_minimalist", "value"]

log = logging.getLogger(__name__)

DEFAULT_AUC_TOLERANCE = 0.01
DEFAULT_CAM_FLOOR = 0.0
# objective -> (direction, what the reason sentence says the pick has)
PREFERABLE: dict[str, tuple[str, str]] = {
    "params": ("minimize", "the fewest parameters"),
    "epoch_seconds": ("minimize", "the shortest epoch time"),
    "flops": ("minimize", "the fewest FLOPs"),
    "cam_quality": ("maximize", "the best CAM quality"),
    "auc": ("maximize", "the highest validation AUC"),
}
DEFAULT_ORDER = ("params", "epoch_seconds")
WORDS = {"params": "parameters", "epoch_seconds": "epoch time", "flops": "FLOPs", "cam_quality": "CAM quality",
         "auc": "AUC"}


def completed(study: optuna.Study, baselines: bool | None = False) -> list[FrozenTrial]:
    """Completed trials; ``baselines`` False: candidates only, True: baselines only, None: both."""
    from optuna.trial import TrialState

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
    """One of the four stored objective values of ``trial``."""
    return trial.values[OBJECTIVES.index(objective)]


def metric(trial: FrozenTrial, name: str) -> float:
    """An objective value, or ``flops`` from the user attrs (infinite, i.e. worst, when it was not counted)."""
    if name == "flops":
        flops = records.flops(trial)
        return float("inf") if flops is None else float(flops)
    return value(trial, name)


@dataclass(frozen=True)
class Preference:
    """What decides among the near-best candidates: ``order`` lexicographically, or ``weights`` as a weighted rank."""

    order: tuple[str, ...] = DEFAULT_ORDER
    weights: tuple[float, ...] | None = None

    def describe(self) -> str:
        if self.weights is None:
            return ", then ".join(self.order)
        return "weighted rank of " + ", ".join(f"{o} x{w:g}" for o, w in zip(self.order, self.weights))


def parse_prefer(text: str | Sequence[str] | Preference | None) -> Preference:
    """``"epoch_seconds"``, ``"flops,params"`` or ``"params:2,epoch_seconds:1"`` (also ``=``) -> Preference.

    Raises UserError for an unknown objective (with a did-you-mean), a repeated one, or a weight that is not a
    positive number."""
    if text is None:
        return Preference()
    if isinstance(text, Preference):
        return text
    items = [p.strip() for p in (text.split(",") if isinstance(text, str) else text) if p.strip()]
    if not items:
        raise UserError(f"--prefer needs at least one objective ({', '.join(PREFERABLE)}), got {text!r}.")
    order, weights = [], []
    for item in items:
        name, sep, weight = item.replace("=", ":").partition(":")
        name = look_up(name.strip(), PREFERABLE, "objective in --prefer")
        if name in order:
            raise UserError(f"--prefer names '{name}' twice in {text!r}.")
        order.append(name)
        if sep:
            try:
                w = float(weight)
            except ValueError:
                w = float("nan")
            if not (math.isfinite(w) and w > 0):
                raise UserError(f"--prefer weight of '{name}' must be a positive number, got {weight.strip()!r}.")
            weights.append(w)
        else:
            weights.append(None)
    if all(w is None for w in weights):
        return Preference(tuple(order))
    return Preference(tuple(order), tuple(1.0 if w is None else w for w in weights))


@dataclass
class Choice:
    """The chosen trial, the sentence saying why, and the trials the rule chose among."""

    trial: FrozenTrial
    reason: str
    eligible: list[int] = field(default_factory=list)


def _signed(trial: FrozenTrial, name: str) -> float:
    """The metric with its sign flipped where bigger is better, so smaller is always better."""
    v = metric(trial, name)
    return v if PREFERABLE[name][0] == "minimize" else -v


def _tie_key(trial: FrozenTrial) -> tuple:
    return (*(_signed(trial, o) for o in DEFAULT_ORDER), trial.number)


def _weighted_scores(trials: list[FrozenTrial], pref: Preference) -> dict[int, float]:
    """trial number -> weighted mean of its per-objective ranks scaled to [0, 1] (0 best)."""
    import numpy as np
    from scipy.stats import rankdata

    n = len(trials)
    total = np.zeros(n)
    for name, w in zip(pref.order, pref.weights or ()):
        ranks = rankdata([_signed(t, name) for t in trials], method="average") - 1
        total += w * (ranks / (n - 1) if n > 1 else ranks)
    total /= sum(pref.weights or (1.0,))
    return {t.number: float(s) for t, s in zip(trials, total)}


def _format(name: str, v: float) -> str:
    if name in ("params", "flops"):
        return "not counted" if not math.isfinite(v) else (f"{int(v):,}" if name == "params" else f"{v / 1e6:.2f} M")
    if name == "epoch_seconds":
        return f"{v:.3g} s per epoch"
    return f"{v:+.3f}" if name == "cam_quality" else f"{v:.4f}"


def check_rule(auc_tolerance: float, cam_floor: float | None) -> None:
    if not (isinstance(auc_tolerance, (int, float)) and math.isfinite(auc_tolerance) and auc_tolerance >= 0):
        raise UserError(f"--auc-tolerance must be a number >= 0, got {auc_tolerance!r}.")
    if cam_floor is not None and not math.isfinite(cam_floor):
        raise UserError(f"--cam-floor must be a finite number, got {cam_floor!r}.")


def minimalist(trials: list[FrozenTrial], auc_tolerance: float = DEFAULT_AUC_TOLERANCE,
               cam_floor: float | None = DEFAULT_CAM_FLOOR,
               prefer: str | Sequence[str] | Preference | None = None,
               aucs: dict[int, float] | None = None, kind: str = "cross-validated") -> Choice | None:
    """The minimalist choice among ``trials`` (None if there are none) and a sentence saying why.

    Keeps the trials whose AUC is within ``auc_tolerance`` of the best and whose CAM quality is >= ``cam_floor``
    (waived, with a note, when none reaches it), then takes the best by ``prefer`` (default: fewest parameters,
    ties by epoch time; see the module docstring for the forms ``prefer`` takes). ``aucs`` ({trial number:
    cross-validated AUC}, from ``nas_med.confirm``) replaces the validation AUC, and only those trials compete;
    ``kind`` names those AUCs in the reason (``nas_med.final.fidelity``: the final recipe's validation AUC)."""
    check_rule(auc_tolerance, cam_floor)
    pref = parse_prefer(prefer)
    if aucs is not None:
        trials = [t for t in trials if t.number in aucs]
    if not trials:
        return None

    def score(t: FrozenTrial) -> float:
        return value(t, "auc") if aucs is None else aucs[t.number]

    best = max(score(t) for t in trials)
    near = [t for t in trials if score(t) >= best - auc_tolerance]
    sound = [t for t in near if cam_floor is None or value(t, "cam_quality") >= cam_floor]
    floor_note = ""
    if not sound:
        sound = near
        floor_note = f"; no near-best candidate reached the CAM-quality floor {cam_floor:g}, so it was waived"
    if pref.weights is None:
        pick = min(sound, key=lambda t: (*(_signed(t, o) for o in pref.order), *_tie_key(t)))
        first = pref.order[0]
        what = f"{PREFERABLE[first][1]} ({_format(first, metric(pick, first))})"
        rest = [o for o in (*pref.order[1:], *DEFAULT_ORDER) if o != first]
    else:
        scores = _weighted_scores(sound, pref)
        pick = min(sound, key=lambda t: (scores[t.number], *_tie_key(t)))
        what = f"the best {pref.describe()} (score {scores[pick.number]:.3f}; 0 = best on each)"
        rest = list(DEFAULT_ORDER)
    ties = ", then ".join(WORDS[o] for o in dict.fromkeys(rest))
    floor = f" and CAM quality >= {cam_floor:g}" if cam_floor is not None and not floor_note else ""
    kind = "validation" if aucs is None else kind
    reason = (f"trial {pick.number} has {what} among the {len(sound)} of {len(trials)} candidate(s) with {kind} "
              f"AUC within {auc_tolerance:g} of the best ({best:.4f}){floor}{floor_note}; ties broken by {ties}. "
              f"Its {kind} AUC is {score(pick):.4f}, with {int(value(pick, 'params')):,} parameters.")
    return Choice(pick, reason, [t.number for t in sound])


@dataclass(frozen=True)
class Rule:
    """The minimalist rule's options, checked when made (UserError): ``auc_tolerance`` (>= 0), ``cam_floor``
    (finite, or None for no floor) and ``prefer`` (any form ``parse_prefer`` takes, kept as a Preference). Passed
    as one argument from the command line to ``choose``, ``export_study``, ``retrain_study`` and the report."""

    auc_tolerance: float = DEFAULT_AUC_TOLERANCE
    cam_floor: float | None = DEFAULT_CAM_FLOOR
    prefer: Preference | str | Sequence[str] | None = None

    def __post_init__(self) -> None:
        check_rule(self.auc_tolerance, self.cam_floor)
        object.__setattr__(self, "prefer", parse_prefer(self.prefer))

    def pick(self, trials: list[FrozenTrial], aucs: dict[int, float] | None = None,
             kind: str = "cross-validated") -> Choice | None:
        """``minimalist`` under this rule."""
        return minimalist(trials, self.auc_tolerance, self.cam_floor, self.prefer, aucs, kind)


def study_minimalist(study: optuna.Study, rule: Rule | None = None) -> Choice | None:
    """The minimalist choice on the Pareto front of the study's completed candidates, on the cross-validated
    AUCs when ``nas-med confirm`` stored them for the current front."""
    return (rule or Rule()).pick(pareto_front(completed(study)), confirmed_aucs(study))


def choose(study: optuna.Study, trial_number: int | None = None, rule: Rule | None = None) -> Choice:
    """The trial to retrain or export: ``trial_number`` if given (any completed trial, baselines included),
    else the minimalist choice (under ``rule``, default ``Rule()``) on the Pareto front of completed candidates.

    Raises UserError when the study has no completed trial, or the number is not a completed trial."""
    done = completed(study, baselines=None)
    if not done:
        raise UserError(f"study '{study.study_name}' has no completed trial yet; run `nas-med search --study "
                        f"{study.study_name}` (or wait for its workers) first.")
    rule = study_minimalist(study, rule)
    if trial_number is None:
        if rule is None:
            numbers = ", ".join(str(t.number) for t in done)
            raise UserError(f"study '{study.study_name}' has no completed candidate, only baselines; pick one "
                            f"with --trial N (completed: {numbers}).")
        return rule
    by_number = {t.number: t for t in done}
    if trial_number not in by_number:
        state = next((t.state.name.lower() for t in study.get_trials(deepcopy=False) if t.number == trial_number),
                     "not in the study")
        raise UserError(f"--trial {trial_number} is not a completed trial of '{study.study_name}' ({state}); "
                        f"completed: {', '.join(str(n) for n in sorted(by_number))}.")
    trial = by_number[trial_number]
    what = f"baseline {records.baseline_name(trial)}" if is_baseline(trial) else "a candidate"
    rule_note = "" if rule is None else (" (it is also the minimalist choice)" if rule.trial.number == trial_number
                                         else f" (the minimalist rule would pick trial {rule.trial.number})")
    reason = (f"trial {trial_number}, {what}, was selected with --trial{rule_note}. Its AUC is "
              f"{value(trial, 'auc'):.4f}, with {int(value(trial, 'params')):,} parameters.")
    return Choice(trial, reason, [trial_number])


def front_numbers(study: optuna.Study) -> list[int]:
    """Trial numbers of the study's current Pareto front of completed candidates."""
    return [t.number for t in pareto_front(completed(study))]


def confirmed_aucs(study: optuna.Study) -> dict[int, float] | None:
    """The cross-validated AUCs stored by ``nas-med confirm``; None when the study was not confirmed, or when
    its front changed since (more trials ran), with a warning."""
    stored = study.user_attrs.get(records.CONFIRMED)
    if not stored:
        return None
    if stored.get("front") != front_numbers(study):
        log.warning("study '%s' was confirmed before its Pareto front changed; the confirmation is ignored "
                    "(run `nas-med confirm` again)", study.study_name)
        return None
    return {int(n): float(a) for n, a in stored["auc"].items()}
