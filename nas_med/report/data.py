"""What the report shows, gathered from a study: trials by role, the minimalist choice, hypervolume, CAM grids."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial

from ..errors import UserError
from ..search import records
from ..search.records import is_baseline, stored_config
from ..select import Choice, Rule, completed, pareto_front, study_minimalist
from .hypervolume import Scale, hypervolume_curve

log = logging.getLogger(__name__)

__all__ = ["ReportData", "collect", "describe_trial", "read_cam_grid", "role"]


@dataclass
class ReportData:
    """One study, ready to draw: completed trials split by role and the figures' numbers."""

    study_name: str
    config: dict
    candidates: list[FrozenTrial]
    baselines: list[FrozenTrial]
    front: list[FrozenTrial]
    choice: Choice | None
    states: dict[str, int]
    scale: Scale
    hv_trials: list[int] = field(default_factory=list)
    hv_values: list[float] = field(default_factory=list)
    cam_grids: dict[int, bytes] = field(default_factory=dict)
    confirmed: dict[int, float] | None = None  # cross-validated AUCs from `nas-med confirm`
    reproducibility: str | None = None  # search.reproducibility.study_note: what epoch s means, what numbers rest on

    @property
    def trials(self) -> list[FrozenTrial]:
        """Every completed trial (candidates and baselines) in trial order."""
        return sorted(self.candidates + self.baselines, key=lambda t: t.number)

    @property
    def chosen(self) -> int | None:
        return None if self.choice is None else self.choice.trial.number


def role(data: ReportData, trial: FrozenTrial) -> str:
    """'choice', 'baseline', 'front' or 'dominated': how a completed trial is drawn."""
    if trial.number == data.chosen:
        return "choice"
    if is_baseline(trial):
        return "baseline"
    return "front" if any(t.number == trial.number for t in data.front) else "dominated"


def read_cam_grid(trial: FrozenTrial, artifact_dir: Path) -> bytes | None:
    """The PNG bytes of the CAM grid stored for ``trial`` (user attr ``records.CAM_ARTIFACT``), or None if absent."""
    artifact = trial.user_attrs.get(records.CAM_ARTIFACT)
    if not artifact:
        return None
    from optuna.artifacts import FileSystemArtifactStore
    from optuna.artifacts.exceptions import ArtifactNotFound

    try:
        with FileSystemArtifactStore(str(artifact_dir)).open_reader(artifact) as f:
            blob = f.read()
    except (ArtifactNotFound, OSError) as exc:
        log.warning("CAM grid %s of trial %d not found in %s: %s", artifact, trial.number, artifact_dir, exc)
        return None
    return blob if blob.startswith(b"\x89PNG") else None


def collect(study: optuna.Study, artifact_dir: Path | None, rule: Rule | None = None) -> ReportData:
    """Gather the report's data; UserError when the study has no completed trial."""
    everything = completed(study, baselines=None)
    if not everything:
        raise UserError(f"study '{study.study_name}' has no completed trial yet: nothing to report.")
    candidates, baselines = completed(study), completed(study, baselines=True)
    front = pareto_front(candidates)
    choice = study_minimalist(study, rule)
    states: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
    scale = Scale.fit([t.values for t in everything])
    ordered = sorted(candidates, key=lambda t: t.number)
    data = ReportData(study.study_name, stored_config(study), candidates, baselines, front, choice, states, scale,
                      [t.number for t in ordered], hypervolume_curve([t.values for t in ordered], scale))
    from ..select import confirmed_aucs

    data.confirmed = confirmed_aucs(study)
    from ..search.reproducibility import study_note

    data.reproducibility = study_note(study)
    if artifact_dir is not None:
        shown = ([choice.trial] if choice else []) + baselines
        for t in shown:
            blob = read_cam_grid(t, artifact_dir)
            if blob is not None:
                data.cam_grids[t.number] = blob
    return data


def describe_trial(trial: FrozenTrial) -> str:
    """'baseline resnet18' or 'trial 12'."""
    name = records.baseline_name(trial)
    return f"baseline {name} (trial {trial.number})" if name else f"trial {trial.number}"
