"""``nas-med evaluate``: an exported model on a second dataset with the same class names (issue 26)."""
from __future__ import annotations

import hashlib
import json

import pytest
from click.testing import CliRunner
from PIL import Image

from nas_med.cli.main import cli
from nas_med.errors import UserError
from nas_med.export.evaluate import match_classes


def _folder(root, data, classes):
    """The test images of ``data`` as PNG files in one sub-folder per class name of ``classes``."""
    for i in range(len(data.test)):
        label = int(data.test.labels[i])
        path = root / classes[label] / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(data.test.images[i, 0].numpy()).save(path)
    return root


@pytest.fixture
def model(breast_minicnn_export, tmp_path):
    """A private copy of the shared export (evaluate writes into the model folder)."""
    import shutil

    out, data, _ = breast_minicnn_export
    copy = tmp_path / "model"
    shutil.copytree(out, copy)
    return copy, data


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_evaluate_a_folder_with_the_same_classes(model, tmp_path, isolated):
    folder, data = model
    ext = _folder(tmp_path / "site-b", data, data.classes)
    before = {p.name: _sha(p) for p in folder.iterdir() if p.is_file() and p.name != "README.md"}
    result = CliRunner().invoke(cli, ["evaluate", str(folder), "--dataset", f"folder:{ext}", "--bootstrap", "100"])
    assert result.exit_code == 0, result.output
    record = json.loads((folder / "evaluations" / "site-b-all.json").read_text())
    assert record["n"] == len(data.test) and record["split"] == "all"
    lo, hi = record["auc_ci"]
    assert 0 <= lo <= record["auc"] <= hi <= 1
    # the same images as the export's test split (PNG round trip is lossless at 28 px): the same figures
    op = json.loads((folder / "operating_point.json").read_text())
    at = record["at_stored_threshold"]
    assert at["threshold"] == op["threshold"]
    assert at["sensitivity"]["value"] == pytest.approx(op["test"]["sensitivity"])
    assert at["specificity"]["value"] == pytest.approx(op["test"]["specificity"])
    assert record["calibration"]["ece_at_stored_temperature"] == pytest.approx(op["ece"]["test_after"])
    assert record["prediction_sets"]["empirical_coverage"] == pytest.approx(op["conformal"]["test"]["coverage"])
    # the evaluated images are the model's own test images: every one a copy of a test image, some of train too
    over = record["model_data_overlap"]
    assert over["test"] == len(data.test) and over["train"] >= 1 and over["threshold"] == 4
    assert f"{len(data.test)} of its test" in result.output
    best = record["at_best_threshold"]
    assert best["sensitivity"]["value"] + best["specificity"]["value"] >= \
        at["sensitivity"]["value"] + at["specificity"]["value"] - 1e-9  # Youden's J on these images
    card = (folder / "README.md").read_text()
    assert card.count("## External evaluations") == 1 and "`site-b-all`" in card
    again = CliRunner().invoke(cli, ["evaluate", str(folder), "--dataset", f"folder:{ext}", "--name", "second",
                                     "--bootstrap", "20"])
    assert again.exit_code == 0, again.output
    card = (folder / "README.md").read_text()
    assert card.count("## External evaluations") == 1 and "`second`" in card and "`site-b-all`" in card
    after = {p.name: _sha(p) for p in folder.iterdir() if p.is_file() and p.name != "README.md"}
    assert after == before  # weights and every other file untouched


def test_classes_are_matched_by_name():
    assert match_classes(["malignant", "benign"], ["benign", "malignant"], "x").tolist() == [1, 0]
    with pytest.raises(UserError, match=r"the model's 'normal, benign' not in the dataset; the dataset's 'benign' "
                                        r"not in the model"):
        match_classes(["malignant", "normal, benign"], ["benign", "malignant"], "folder:x")


def test_bad_input_is_one_line_and_writes_nothing(model, tmp_path, isolated):
    folder, data = model
    wrong = _folder(tmp_path / "wrong", data, ["malignant", "benign"])
    result = CliRunner().invoke(cli, ["evaluate", str(folder), "--dataset", f"folder:{wrong}"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    line = result.output.strip().splitlines()[-1]
    assert "'benign'" in line and "'normal, benign'" in line and len(result.output.strip().splitlines()) == 1
    assert not (folder / "evaluations").exists()
    ext = _folder(tmp_path / "ok", data, data.classes)
    for args, needle in ((["--split", "everything"], "--split must be one of"),
                         (["--bootstrap", "0"], "--bootstrap must be at least 1")):
        result = CliRunner().invoke(cli, ["evaluate", str(folder), "--dataset", f"folder:{ext}", *args])
        assert result.exit_code == 2 and needle in result.output
    result = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "nothing"), "--dataset", f"folder:{ext}"])
    assert result.exit_code == 2 and "not an exported model folder" in result.output
    assert not (folder / "evaluations").exists()


def _metadata(path, ext, rows):
    import csv

    with open(path, "w", newline="") as fh:  # quoted: the class folder "normal, benign" holds a comma
        writer = csv.writer(fh)
        writer.writerow(["filename", "sex", "age", "site"])
        writer.writerows(rows)
    return path


def test_subgroup_figures_from_a_metadata_csv(model, tmp_path, isolated):
    folder, data = model
    ext = _folder(tmp_path / "site-c", data, data.classes)
    files = sorted(p.relative_to(ext).as_posix() for p in ext.rglob("*.png"))
    rows = [(f, "F" if k % 3 else "M", 20 + k % 60, "tiny" if k < 8 else "main") for k, f in enumerate(files)]
    meta = _metadata(tmp_path / "meta.csv", ext, rows)
    result = CliRunner().invoke(cli, ["evaluate", str(folder), "--dataset", f"folder:{ext}", "--metadata", str(meta),
                                      "--bootstrap", "50"])
    assert result.exit_code == 0, result.output
    record = json.loads((folder / "evaluations" / "site-c-all.json").read_text())
    groups = {(g["attribute"], g["value"]): g for g in record["subgroups"]}
    assert groups[("sex", "F")]["n"] + groups[("sex", "M")]["n"] == len(files)
    assert groups[("site", "tiny")]["n"] == 8 and groups[("site", "tiny")]["too_small"]
    assert not groups[("site", "main")]["too_small"]
    bands = [v for a, v in groups if a == "age"]
    assert len(bands) == 4 and sum(groups[("age", b)]["n"] for b in bands) == len(files)  # quartile bands
    main = groups[("site", "main")]
    lo, hi = main["auc"]["ci"]
    assert lo <= main["auc"]["value"] <= hi and sum(main["per_class"]) == main["n"]
    card = (folder / "README.md").read_text()
    assert "Subgroups of `site-c-all`" in card and "too few to say" in card
    assert "site = tiny: 8 images" in result.output


def test_bad_metadata_is_one_line_and_writes_nothing(model, tmp_path, isolated):
    folder, data = model
    ext = _folder(tmp_path / "site-d", data, data.classes)
    files = sorted(p.relative_to(ext).as_posix() for p in ext.rglob("*.png"))
    cases = {"misses": [(f, "F", 40, "a") for f in files[1:]],
             "twice": [(f, "F", 40, "a") for f in files] + [(files[0], "M", 41, "b")]}
    for what, rows in cases.items():
        meta = _metadata(tmp_path / f"{what}.csv", ext, rows)
        result = CliRunner().invoke(cli, ["evaluate", str(folder), "--dataset", f"folder:{ext}", "--metadata",
                                          str(meta)])
        assert result.exit_code == 2 and "Traceback" not in result.output, what
        line = result.output.strip().splitlines()[-1]
        assert (f"no row for 1 of {len(files)}" in line) if what == "misses" else (f"maps '{files[0]}' twice" in line)
    (tmp_path / "unquoted.csv").write_text(f"filename,sex\n{files[-1]},F\n")
    result = CliRunner().invoke(cli, ["evaluate", str(folder), "--dataset", f"folder:{ext}", "--metadata",
                                      str(tmp_path / "unquoted.csv")])
    assert result.exit_code == 2 and "line 2 has more fields than its header" in result.output
    (tmp_path / "nokey.csv").write_text("file,sex\na.png,F\n")
    result = CliRunner().invoke(cli, ["evaluate", str(folder), "--dataset", f"folder:{ext}", "--metadata",
                                      str(tmp_path / "nokey.csv")])
    assert result.exit_code == 2 and "needs a column filename" in result.output
    assert not (folder / "evaluations").exists()


def test_force_replaces_an_export_with_its_evaluations(tmp_path):
    from nas_med.export.write import check_target

    out = tmp_path / "model"
    (out / "evaluations").mkdir(parents=True)
    (out / "spec.json").write_text("{}")
    (out / "evaluations" / "site-b-all.json").write_text("{}")
    check_target(out, force=True)  # an export that was evaluated is still an export
    (out / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not an exported model folder"):
        check_target(out, force=True)
