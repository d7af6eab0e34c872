"""Per-trial artifacts for optuna-dashboard: a PNG grid of CAM overlays and a markdown note."""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import optuna
from optuna.artifacts import FileSystemArtifactStore, upload_artifact

from ..objectives.overlay import cam_grid

log = logging.getLogger(__name__)


def upload_cam_grid(trial: optuna.Trial | optuna.trial.FrozenTrial, store_dir: Path, images: np.ndarray,
                    cams: np.ndarray, storage=None) -> str:
    """Save the CAM grid of ``trial`` into the artifact store at ``store_dir``; returns the artifact id."""
    store_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"cam-grid-trial-{trial.number}.png"
        cam_grid(images, cams).save(path)
        return upload_artifact(artifact_store=FileSystemArtifactStore(str(store_dir)), file_path=str(path),
                               study_or_trial=trial, storage=storage, mimetype="image/png")


def _fmt(key: str, value) -> str:
    if isinstance(value, float) and key == "params":
        return f"{key} {value:,.0f}"
    if isinstance(value, float) and key == "cam_quality":
        return f"{key} {value:+.3f}"
    return f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}"


def trial_note(summary: str, values: dict | None, reason: str | None = None, cam_artifact: str | None = None) -> str:
    """The markdown note shown beside a trial in optuna-dashboard: architecture in one line, objective values,
    why the trial stopped (if it did) and which artifact holds its CAM grid."""
    lines = [f"**Architecture:** `{summary}`", ""]
    if values:
        lines += ["**Objectives:** " + " · ".join(_fmt(k, v) for k, v in values.items()), ""]
    if reason:
        lines += [f"**Stopped:** {reason}", ""]
    if cam_artifact:
        lines.append(f"CAM grid: artifact `{cam_artifact}` (each row of images above its row of CAM overlays)")
    return "\n".join(lines).rstrip() + "\n"


def save_trial_note(trial: optuna.Trial, body: str) -> None:
    """Attach ``body`` as the trial's dashboard note (best effort: a note never fails a trial)."""
    try:
        from optuna_dashboard import save_note

        save_note(trial, body)
    except Exception as exc:  # pragma: no cover - the dashboard package is optional at run time
        log.warning("could not save the note of trial %d: %s", trial.number, exc)
