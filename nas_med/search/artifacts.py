"""Per-trial artifacts for optuna-dashboard: a PNG grid of CAM overlays and a markdown note."""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import optuna
from optuna.artifacts import FileSystemArtifactStore, upload_artifact
from PIL import Image

log = logging.getLogger(__name__)


def cam_overlay(image: np.ndarray, cam: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 heat-map overlay of ``cam`` in [0, 1] on a uint8 (C, H, W) image."""
    from matplotlib import colormaps

    gray = image.astype(np.float32).mean(0) / 255 if image.shape[0] != 3 else image.transpose(1, 2, 0) / 255
    rgb = np.repeat(gray[..., None], 3, axis=2) if gray.ndim == 2 else gray
    heat = colormaps["jet"](np.clip(cam, 0, 1))[..., :3]
    return (np.clip(0.55 * rgb + 0.45 * heat, 0, 1) * 255).astype(np.uint8)


def cam_grid(images: np.ndarray, cams: np.ndarray, columns: int = 8, scale: int = 2) -> Image.Image:
    """Image rows over their CAM-overlay rows, as one PIL image (upscaled for small inputs)."""
    n, _, h, w = images.shape
    rows = []
    for start in range(0, n, columns):
        chunk = range(start, min(n, start + columns))
        plain = [np.repeat(images[i].mean(0, keepdims=True).transpose(1, 2, 0), 3, 2).astype(np.uint8)
                 if images.shape[1] != 3 else images[i].transpose(1, 2, 0) for i in chunk]
        over = [cam_overlay(images[i], cams[i]) for i in chunk]
        pad = [np.zeros((h, w, 3), np.uint8)] * (columns - len(plain))
        rows += [np.concatenate(plain + pad, 1), np.concatenate(over + pad, 1)]
    grid = Image.fromarray(np.concatenate(rows, 0))
    factor = max(scale, 128 // max(h, 1))
    return grid.resize((grid.width * factor, grid.height * factor), Image.NEAREST)


def upload_cam_grid(trial: optuna.Trial | optuna.trial.FrozenTrial, store_dir: Path, images: np.ndarray,
                    cams: np.ndarray, storage=None) -> str:
    """Save the CAM grid of ``trial`` into the artifact store at ``store_dir``; returns the artifact id."""
    store_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"cam-grid-trial-{trial.number}.png"
        cam_grid(images, cams).save(path)
        return upload_artifact(artifact_store=FileSystemArtifactStore(str(store_dir)), file_path=str(path),
                               study_or_trial=trial, storage=storage, mimetype="image/png")


def trial_note(summary: str, values: dict | None, reason: str | None = None, cam_artifact: str | None = None) -> str:
    """The markdown note shown beside a trial in optuna-dashboard."""
    lines = [f"**Architecture:** `{summary}`", ""]
    if values:
        lines.append(" | ".join(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}" for k, v in values.items()))
    if reason:
        lines.append(f"**Stopped:** {reason}")
    if cam_artifact:
        lines.append(f"CAM grid artifact: `{cam_artifact}` (top rows images, bottom rows Grad-CAM overlays)")
    return "\n".join(lines)


def save_trial_note(trial: optuna.Trial, body: str) -> None:
    """Attach ``body`` as the trial's dashboard note (best effort: a note never fails a trial)."""
    try:
        from optuna_dashboard import save_note

        save_note(trial, body)
    except Exception as exc:  # pragma: no cover - the dashboard package is optional at run time
        log.warning("could not save the note of trial %d: %s", trial.number, exc)
