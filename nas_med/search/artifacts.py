"""Per-trial artifacts for optuna-dashboard: a PNG grid of CAM overlays, a PNG of the learning curves and a
markdown note that shows both at full size (the dashboard's artifact list shows small thumbnails)."""
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
                    cams: np.ndarray, storage=None, captions: list[str] | None = None) -> str:
    """Save the CAM grid of ``trial`` (each image captioned with ``captions``: true and predicted class, as the
    model card's) into the artifact store at ``store_dir``; returns the artifact id."""
    store_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"cam-grid-trial-{trial.number}.png"
        cam_grid(images, cams, captions=captions).save(path)
        return upload_artifact(artifact_store=FileSystemArtifactStore(str(store_dir)), file_path=str(path),
                               study_or_trial=trial, storage=storage, mimetype="image/png")


def upload_learning_curves(trial: optuna.Trial, store_dir: Path, history: list[dict], best_epoch: int | None,
                           storage=None) -> str:
    """Save the per-epoch training/validation loss and validation AUC of ``trial`` (epochs numbered from 1, the
    kept epoch marked) into the artifact store; returns the artifact id."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    store_dir.mkdir(parents=True, exist_ok=True)
    epochs = [int(r["epoch"]) + 1 for r in history]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(8, 3), dpi=100)
    ax.plot(epochs, [r["train_loss"] for r in history], "o-", ms=3, label="training loss")
    ax.plot(epochs, [r["val_loss"] for r in history], "s-", ms=3, label="validation loss")
    ax2.plot(epochs, [r["val_auc"] for r in history], "o-", ms=3, color="C2", label="validation AUC")
    for a in (ax, ax2):
        if best_epoch is not None and best_epoch >= 0:
            a.axvline(best_epoch + 1, color="0.5", ls=":", lw=1, label=f"kept epoch {best_epoch + 1}")
        a.set_xlabel("epoch")
        a.legend(fontsize=7)
    ax.set_title(f"trial {trial.number}: loss", fontsize=9)
    ax2.set_title(f"trial {trial.number}: validation AUC", fontsize=9)
    fig.tight_layout()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"learning-curves-trial-{trial.number}.png"
        fig.savefig(path)
        plt.close(fig)
        return upload_artifact(artifact_store=FileSystemArtifactStore(str(store_dir)), file_path=str(path),
                               study_or_trial=trial, storage=storage, mimetype="image/png")


def artifact_url(trial: optuna.Trial, artifact_id: str) -> str:
    """Where optuna-dashboard serves a trial's artifact (``/artifacts/<study id>/<trial id>/<artifact id>``)."""
    from ._optuna_private import storage_of, trial_id

    study_id = storage_of(trial.study).get_study_id_from_name(trial.study.study_name)
    return f"/artifacts/{study_id}/{trial_id(trial)}/{artifact_id}"


def _fmt(key: str, value) -> str:
    if isinstance(value, float) and key == "params":
        return f"{key} {value:,.0f}"
    if isinstance(value, float) and key == "cam_quality":
        return f"{key} {value:+.3f}"
    return f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}"


def trial_note(summary: str, values: dict | None, reason: str | None = None, cam_artifact: str | None = None,
               images: dict[str, str] | None = None, mark: str | None = None) -> str:
    """The markdown note shown beside a trial in optuna-dashboard: the minimalist-choice mark (``mark``: the
    rule's reason), architecture in one line, objective values, why the trial stopped (if it did), which artifact
    holds its CAM grid, and ``images`` {title: artifact URL} shown at full size."""
    lines = ([f"**★ Minimalist choice:** {mark}", ""] if mark else []) + [f"**Architecture:** `{summary}`", ""]
    if values:
        lines += ["**Objectives:** " + " · ".join(_fmt(k, v) for k, v in values.items()), ""]
    if reason:
        lines += [f"**Stopped:** {reason}", ""]
    if cam_artifact:
        lines.append(f"CAM grid: artifact `{cam_artifact}` (each row of images above its row of CAM overlays)")
    for title, url in (images or {}).items():
        lines += ["", f"![{title}]({url})"]
    return "\n".join(lines).rstrip() + "\n"


def note_of(trial, values, attrs: dict | None = None, mark: str | None = None) -> str:
    """The note of a completed ``trial`` (a running ``optuna.Trial`` or a wrapper of a finished one) from its
    objective ``values`` and artifact attrs (``attrs``, else its user attrs)."""
    from . import records

    attrs = trial.user_attrs if attrs is None else {**trial.user_attrs, **attrs}
    images = {}
    for title, key in ((f"CAM grid of trial {trial.number}", records.CAM_ARTIFACT),
                       (f"learning curves of trial {trial.number}", records.CURVE_ARTIFACT)):
        if attrs.get(key):
            try:
                images[title] = artifact_url(trial, attrs[key])
            except Exception as exc:  # noqa: BLE001 - a note never fails a trial
                log.debug("no artifact URL: %s", exc)
    named = dict(zip(("auc", "params", "epoch_seconds", "cam_quality"), values)) if values else None
    return trial_note(attrs.get(records.SUMMARY, "?"), named, cam_artifact=attrs.get(records.CAM_ARTIFACT),
                      images=images, mark=mark)


def save_trial_note(trial: optuna.Trial, body: str) -> None:
    """Attach ``body`` as the trial's dashboard note (best effort: a note never fails a trial)."""
    try:
        from optuna_dashboard import save_note

        save_note(trial, body)
    except Exception as exc:  # pragma: no cover - the dashboard package is optional at run time
        log.warning("could not save the note of trial %d: %s", trial.number, exc)
