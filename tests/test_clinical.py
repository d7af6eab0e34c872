"""Issue 14: the positive class (BreastMNIST: malignant), calibration and threshold math, the operating point in
the export and in ``predict``, the clinical model card, progress lines with piped output and the small-data hint."""
from __future__ import annotations

import json
import re

import numpy as np
import optuna
import pytest
from click.testing import CliRunner
from PIL import Image

from nas_med.calibration import apply_temperature, ece, fit_temperature, threshold_for_sensitivity, youden_threshold
from nas_med.cli.main import cli
from nas_med.data.positive import default_positive, positive_index
from nas_med.errors import UserError
from nas_med.final.bootstrap import resample_metrics
from nas_med.metrics import all_metrics, confusion, per_class, sensitivity_specificity

BREAST = ["malignant", "normal, benign"]


# ---- positive class --------------------------------------------------------------------------------------------

def test_the_positive_class_means_disease():
    assert default_positive("breastmnist", BREAST) == 0
    assert default_positive("pneumoniamnist", ["normal", "pneumonia"]) == 1
    assert default_positive("folder:/x", ["a", "b"]) == 1
    assert positive_index("binary", "breastmnist", BREAST, "normal, benign") == 1
    assert positive_index("multiclass", "synthetic", ["a", "b", "c"]) is None
    with pytest.raises(UserError, match="not a class"):
        positive_index("binary", "breastmnist", BREAST, "benign")
    with pytest.raises(UserError, match="binary tasks only"):
        positive_index("multiclass", "synthetic", ["a", "b", "c"], "a")


def test_breastmnist_sensitivity_is_the_recall_of_malignant():
    # 4 malignant (class 0): 3 called malignant; 6 benign (class 1): 4 called benign
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    p0 = np.array([0.9, 0.8, 0.7, 0.2, 0.1, 0.3, 0.2, 0.4, 0.6, 0.8])
    probs = np.stack([p0, 1 - p0], 1)
    sens, spec = sensitivity_specificity("binary", labels, probs, positive=0)
    assert sens == pytest.approx(3 / 4) and spec == pytest.approx(4 / 6)
    assert all_metrics("binary", labels, probs, positive=0)["sensitivity"] == pytest.approx(3 / 4)
    # the old reading (class 1 positive) gives the benign recall: the bug of the issue
    assert sensitivity_specificity("binary", labels, probs)[0] == pytest.approx(4 / 6)
    # at a threshold of 0.15 on p(malignant) every malignant image is called
    assert sensitivity_specificity("binary", labels, probs, 0, 0.15)[0] == 1.0
    rows = resample_metrics("binary", labels, probs, np.arange(10)[None], positive=0)
    assert rows[0, 2] == pytest.approx(3 / 4) and rows[0, 3] == pytest.approx(4 / 6)
    matrix = confusion(labels, np.where(p0 >= 0.5, 0, 1), 2)
    assert matrix.tolist() == [[3, 1], [2, 4]]
    assert per_class(matrix)[0]["recall"] == pytest.approx(3 / 4)
    assert per_class(matrix)[0]["precision"] == pytest.approx(3 / 5)


def test_loaded_breastmnist_names_malignant_positive(breastmnist_root, isolated):
    from nas_med.data import load_dataset

    data = load_dataset("breastmnist", data_root=breastmnist_root)
    assert data.classes[data.info.positive] == "malignant"


# ---- calibration and threshold math ---------------------------------------------------------------------------

def test_temperature_scaling_recovers_a_known_temperature():
    rng = np.random.default_rng(0)
    true = rng.normal(0, 1.5, size=(4000, 3))
    p = apply_temperature(true, 1.0)
    labels = np.array([rng.choice(3, p=row) for row in p])
    t = fit_temperature(true * 2.5, labels)  # over-confident by 2.5
    assert t == pytest.approx(2.5, rel=0.1)
    before, after = ece(apply_temperature(true * 2.5, 1.0), labels), ece(apply_temperature(true * 2.5, t), labels)
    assert after < before and after < 0.03


def test_ece_of_known_bins():
    probs = np.array([[0.9, 0.1]] * 10)  # confidence 0.9 in one bin, accuracy 0.5
    labels = np.array([0] * 5 + [1] * 5)
    assert ece(probs, labels) == pytest.approx(0.4)


def test_youden_and_target_sensitivity_thresholds():
    scores = np.array([0.1, 0.2, 0.3, 0.35, 0.4, 0.6, 0.7, 0.8, 0.9])
    truth = np.array([0, 0, 0, 1, 1, 0, 1, 1, 1], dtype=bool)
    t = youden_threshold(scores, truth)
    assert 0.3 < t <= 0.35  # all 5 positives, 3 of 4 negatives: J = 0.75, the best (above 0.6: J = 0.6)
    called = scores >= t
    assert called[truth].all() and (~called[~truth]).sum() == 3
    assert 0.6 < threshold_for_sensitivity(scores, truth, 0.6) <= 0.7  # 3 of 5 positives above 0.6
    assert threshold_for_sensitivity(scores, truth, 1.0) == t


# ---- the search display ---------------------------------------------------------------------------------------

def test_the_search_clock_ticks_and_shows_the_running_trial():
    import io
    import time

    from rich.console import Console

    from nas_med.cli.progress import SearchProgress
    from nas_med.progress import emit

    def text(progress):
        console = Console(file=io.StringIO(), width=160)
        console.print(progress.__rich__())
        return console.file.getvalue()

    progress = SearchProgress(4, quiet=True, console=Console(file=io.StringIO()))
    with progress:
        emit("epoch", 2, 3, "basic x1 w4 | gap_linear", trial=5, val_auc=0.8123)
        first = text(progress)
        time.sleep(1.1)
        second = text(progress)
    assert first != second and "elapsed" in first
    assert "#5 epoch 2/3, val AUC 0.8123: basic x1 w4 | gap_linear" in first


# ---- a BreastMNIST study through the CLI, output piped -------------------------------------------------------

@pytest.fixture(scope="module")
def breast_study(breastmnist_root, tmp_path_factory):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("breast")
    storage = f"sqlite:///{folder}/db.sqlite"
    result = CliRunner().invoke(cli, ["search", "--dataset", "breastmnist", "--data-root", str(breastmnist_root),
                                      "--trials", "2", "--epochs", "1", "--space", "tiny", "--pruner", "none",
                                      "--cam-images", "4", "--storage", storage, "--study", "breast",
                                      "--workers", "1"])
    torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    return folder, storage, result.output


def test_search_prints_a_header_and_the_confirm_hint(breast_study):
    _, _, output = breast_study
    assert re.search(r"dataset breastmnist \(binary, 2 classes, positive class malignant\): train 546 / val 78 / "
                     r"test 156 images, 28 px, 1 channel\(s\); device cpu", output), output
    assert len(re.findall(r"^trial \d+ complete", output, re.M)) == 2
    assert "Hint: the validation split is small (78 images, 21 of the rarest class)" in output
    # the pre-flight summary names the near-duplicate groups across splits (the known train-test copy among them)
    assert re.search(r"near-duplicates \(perceptual hash.*across splits: .*\b[1-9]\d* train-test", output)
    assert "nas-med confirm --study breast" in output


@pytest.fixture(scope="module")
def breast_export(breast_study):
    folder, storage, _ = breast_study
    out = folder / "model"
    result = CliRunner().invoke(cli, ["export", "--study", "breast", "--storage", storage, "--out", str(out),
                                      "--seeds", "1", "--bootstrap", "50", "--cam-images", "4",
                                      "--recipe", "search"])  # the trial's own 1-epoch recipe: fast
    assert result.exit_code == 0, result.output
    return out, result.output


def test_export_warns_prints_progress_and_writes_the_operating_point(breast_export):
    out, output = breast_export
    assert "Warning: exporting trial" in output and "an unconfirmed choice" in output
    assert "study breast: dataset breastmnist, train 546 / val 78 / test 156 images" in output
    assert re.search(r"retrain: trial \d+: seed \d+ \(1 of 1\), 1 epochs \[elapsed", output)
    assert "export: writing the folder" in output
    assert re.search(r"calibration: calibration fold 5/5: \d+ training, \d+ held-out images", output)
    op = json.loads((out / "operating_point.json").read_text())
    assert op["positive_class"] == "malignant" and op["positive_index"] == 0
    assert 0 <= op["threshold"] <= 1 and op["temperature"] > 0
    assert set(op["ece"]) == {f"{s}_{w}" for s in ("val", "test", "fit") for w in ("before", "after")}
    assert op["calibration_source"] == "out-of-fold" and op["n_fit"] == 546 + 78  # 78 validation images: small
    assert op["conformal"]["n_calibration"] == 624 and 0 < op["conformal"]["test"]["coverage"] <= 1
    assert (out / "reliability.png").is_file()


def test_the_card_is_written_for_clinical_readers(breast_export):
    out, _ = breast_export
    card = (out / "README.md").read_text()
    assert re.search(r"Train/test independence: Near-duplicates .*across splits: .*\b[1-9]\d* train-test", card)
    assert "## Prediction sets" in card and "empirical coverage" in card
    for heading in ("## Intended use", "**Out of scope:**", "## Data", "Class balance per split",
                    "## Positive class and operating point", "## Test metrics at the operating point",
                    "Confusion matrix", "Per-class figures", "## Calibration", "## Limitations", "## Use"):
        assert heading in card, heading
    assert "Positive class: **malignant**" in card
    assert "ECE" in card and "before ->" in card
    assert "The validation split is small (78 images" in card and "Single site" in card
    assert "nas-med predict THIS_FOLDER image.png" in card and 'Image.open("image.png")' in card
    assert "$" not in card.replace("$$", "")  # every template field filled


def test_predict_applies_the_cards_threshold_and_recomputes_its_sensitivity(breast_export, breastmnist_root,
                                                                          tmp_path):
    out, _ = breast_export
    arrays = np.load(breastmnist_root / "breastmnist.npz")
    images, labels = arrays["test_images"], arrays["test_labels"].reshape(-1)
    paths = []
    for i, img in enumerate(images):
        paths.append(str(tmp_path / f"{i:03d}.png"))
        Image.fromarray(img).save(paths[-1])
    card = (out / "README.md").read_text()
    threshold = float(re.search(r"threshold ([0-9.]+)\*\*", card).group(1))
    row = re.search(r"sensitivity \(malignant recall\) \| ([0-9.]+)[^|]*\| (\d+) of (\d+) \|", card)
    sensitivity, called, positives = float(row.group(1)), int(row.group(2)), int(row.group(3))
    result = CliRunner().invoke(cli, ["predict", str(out), *paths, "--json"])
    assert result.exit_code == 0, result.output[-500:]
    rows = json.loads(result.output)
    p0 = np.array([r["probabilities"]["malignant"] for r in rows])
    assert rows[0]["threshold"] == threshold and rows[0]["positive_class"] == "malignant"
    assert [r["prediction"] == "malignant" for r in rows] == list(p0 >= threshold)
    assert (p0 >= threshold)[labels == 0].sum() == called and (labels == 0).sum() == positives
    assert abs(called / positives - sensitivity) <= 5e-4  # shown to 3 decimals
    # --threshold overrides the stored one
    result = CliRunner().invoke(cli, ["predict", str(out), paths[0], "--threshold", "0", "--json"])
    assert json.loads(result.output)[0]["prediction"] == "malignant"
    result = CliRunner().invoke(cli, ["predict", str(out), paths[0], "--threshold", "1.5"])
    assert result.exit_code == 2 and "--threshold must be in [0, 1]" in result.output


def test_confirm_prints_progress_lines_when_piped(breast_study, breast_export):
    _, storage, _ = breast_study
    result = CliRunner().invoke(cli, ["confirm", "--study", "breast", "--storage", storage, "--folds", "2",
                                      "--max-candidates", "1"])
    assert result.exit_code == 0, result.output
    assert "study breast: dataset breastmnist" in result.output
    assert re.search(r"confirm: trial \d+ fold 1/2 \[elapsed \d+ s\]", result.output), result.output
    assert re.search(r"confirm: trial \d+ fold 2/2 \[elapsed \d+ s, ~\d+ s left\]", result.output)
    assert re.search(r"confirm: trial \d+: 2-fold cross-validated AUC", result.output)


def test_the_chosen_trial_is_marked_in_its_note(breast_study):
    from optuna_dashboard import get_note

    from nas_med.search._optuna_private import trial_id
    from nas_med.search.records import MARKED_CHOICE

    _, storage, _ = breast_study
    study = optuna.load_study(study_name="breast", storage=storage)
    marked = study.user_attrs[MARKED_CHOICE]
    note = get_note(optuna.trial.Trial(study, trial_id(study.trials[marked["trial"]])))
    assert "★ Minimalist choice:" in note and marked["reason"] in note
    assert "![learning curves of trial" in note and "/artifacts/" in note


# ---- report and catalogue ------------------------------------------------------------------------------------

def test_unstable_learning_curves_are_flagged_with_one_based_epochs():
    from nas_med.report.page import unstable

    steady = [{"epoch": i, "val_loss": v} for i, v in enumerate([1.0, 0.8, 0.7, 0.9, 0.65])]
    jumpy = [{"epoch": i, "val_loss": v} for i, v in enumerate([1.0, 0.6, 0.5, 0.55, 0.5, 0.45, 3.5])]
    assert unstable(steady) is None
    assert unstable(jumpy) == 7


def test_datasets_is_a_catalogue(breastmnist_root):
    result = CliRunner().invoke(cli, ["datasets", "--data-root", str(breastmnist_root)])
    assert result.exit_code == 0
    line = next(x for x in result.output.splitlines() if "breastmnist" in x)
    assert "binary" in line and "malignant" in line and "28 px, 64 px" in line and "CC BY 4.0" in line
    names = CliRunner().invoke(cli, ["datasets", "--names"]).output.split()
    assert "breastmnist" in names and "folder:PATH" in names


def test_a_bad_positive_class_is_one_line_and_writes_nothing(breastmnist_root, tmp_path):
    result = CliRunner().invoke(cli, ["search", "--dataset", "breastmnist", "--data-root", str(breastmnist_root),
                                      "--positive", "benign", "--storage", f"sqlite:///{tmp_path}/db.sqlite"])
    assert result.exit_code == 2 and "--positive 'benign' is not a class of 'breastmnist'" in result.output
    assert not (tmp_path / "db.sqlite").exists()


def test_the_positive_class_conflicts_only_when_given_differently():
    from nas_med.search.config import differences

    assert differences({"positive": None}, {"positive": "malignant"}) == []  # an older study resumes
    assert differences({"positive": "malignant"}, {"positive": None}) == []
    assert differences({"positive": "malignant"}, {"positive": "normal, benign"})
