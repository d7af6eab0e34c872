"""Per-trial dashboard artifacts: the CAM grid PNG in the storage's artifact folder and the markdown note."""
from __future__ import annotations

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState
from optuna_dashboard import get_note
from PIL import Image

from nas_med.objectives.overlay import cam_grid, cam_overlay, class_captions, grid_factor
from nas_med.search.artifacts import trial_note, upload_cam_grid
from nas_med.search.storage import artifact_dir

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_every_completed_trial_has_cam_grid_and_note(tiny_study) -> None:
    study, config = tiny_study
    folder = artifact_dir(config.storage)
    done = [t for t in study.get_trials() if t.state == TrialState.COMPLETE]
    assert len(done) == 6  # 5 candidates + the minicnn baseline
    for t in done:
        path = folder / t.user_attrs["cam_artifact"]
        assert path.is_file(), path
        assert path.read_bytes()[:8] == PNG_MAGIC
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            # 8 CAM images of 16 px in one block of 8 columns (images over overlays), upscaled 8x to 128 px tiles,
            # below a white band captioning each image with its true and predicted class
            assert image.size[0] == 8 * 16 * 8 and image.size[1] > 2 * 16 * 8 and image.mode == "RGB"
            band = np.asarray(image.convert("L"))[:image.size[1] - 2 * 16 * 8]
            assert band.max() == 255 and band.min() < 100 and (band == 255).mean() > 0.7
        note = get_note(optuna.Trial(study, t._trial_id))
        assert f"`{t.user_attrs['summary']}`" in note.splitlines()[0]
        assert f"auc {t.values[0]:.4g}" in note and f"params {t.values[1]:,.0f}" in note
        assert f"cam_quality {t.values[3]:+.3f}" in note and t.user_attrs["cam_artifact"] in note


def test_grid_layout_and_size() -> None:
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (10, 1, 28, 28), dtype=np.uint8)
    cams = rng.random((10, 28, 28), dtype=np.float32)
    grid = cam_grid(gray, cams, columns=4)
    f = grid_factor(28)
    assert f == 5 and grid.size == (4 * 28 * f, 2 * 3 * 28 * f)   # 3 blocks of 4 (the last padded)
    pixels = np.asarray(grid)
    assert not pixels[-2 * 28 * f:, -2 * 28 * f:].any()               # the padding tiles are black
    # the top-left tile is the first image itself (grey, upscaled), the tile below it its overlay
    assert (pixels[:f, :f] == gray[0, 0, 0, 0]).all()
    assert cam_grid(gray[:3], cams[:3]).size == (3 * 28 * f, 2 * 28 * f)   # fewer images than columns
    rgb = rng.integers(0, 256, (2, 3, 224, 224), dtype=np.uint8)
    assert cam_grid(rgb, rng.random((2, 224, 224))).size == (2 * 224, 2 * 224)  # large images are not upscaled
    with pytest.raises(ValueError, match="cams"):
        cam_grid(gray, cams[:, :10])


def test_captions_name_the_true_and_predicted_class() -> None:
    assert class_captions(["a", "b"], np.array([0, 1]), [1, 1]) == ["true: a\npred: b", "true: b\npred: b"]
    assert class_captions(["a", "b", "c"], np.array([[1, 0, 1]]), [2]) == ["true: a, c\npred: c"]  # multi-label
    assert class_captions(["a", "b"], [0], [1], np.array([[0.3, 0.7]])) == ["true: a\npred: b\np = 0.70"]


def test_overlay_colours_follow_the_cam() -> None:
    image = np.full((1, 2, 1), 128, np.uint8)
    over = cam_overlay(image, np.array([[0.0], [1.0]], np.float32)).astype(int)
    assert over[0, 0, 2] > over[0, 0, 0]   # cold (0): blue over red
    assert over[1, 0, 0] > over[1, 0, 2]   # hot (1): red over blue


def test_upload_and_note_text(tmp_path) -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    trial = study.ask()
    rng = np.random.default_rng(1)
    art = upload_cam_grid(trial, tmp_path / "artifacts", rng.integers(0, 256, (2, 1, 16, 16), dtype=np.uint8),
                          rng.random((2, 16, 16), dtype=np.float32))
    assert (tmp_path / "artifacts" / art).read_bytes()[:8] == PNG_MAGIC
    assert any(art in key for key in study.trials[0].system_attrs)   # registered with the trial for the dashboard
    note = trial_note("simple x2 w8", {"auc": 0.91234, "params": 12345.0, "epoch_seconds": 0.5,
                                       "cam_quality": 0.1}, cam_artifact=art)
    assert note.splitlines()[0] == "**Architecture:** `simple x2 w8`"
    assert "auc 0.9123 · params 12,345 · epoch_seconds 0.5 · cam_quality +0.100" in note
    pruned = trial_note("basic x3 w4", None, "pruned by the median pruner at epoch 1 (validation AUC 0.5000)")
    assert "**Stopped:** pruned by the median pruner at epoch 1" in pruned and "Objectives" not in pruned
