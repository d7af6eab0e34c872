"""``nas-med datasets``: the catalog, ``show`` counts, and one-line errors (exit 2, no traceback) for bad input."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from nas_med.cli.main import cli


@pytest.fixture(autouse=True)
def _isolated(isolated):
    """Every test here: own data cache, one torch thread (tests/conftest.py)."""


@pytest.fixture
def breast(breastmnist_root) -> Path:
    """The real BreastMNIST files (tests/conftest.py skips, or fails in CI, when ../shared is absent)."""
    return breastmnist_root


def _png(path: Path, value: int, size: int = 8) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(value).integers(0, 256, (size, size), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


@pytest.fixture
def image_folder(tmp_path) -> Path:
    for k in range(20):
        _png(tmp_path / "imgs" / "benign" / f"{k}.png", k)
        _png(tmp_path / "imgs" / "malignant" / f"{k}.png", 100 + k)
    return tmp_path / "imgs"


@pytest.fixture
def msk_tree(tmp_path) -> Path:
    for a, anatomy in enumerate(("af", "hip", "knee", "shoulder", "spine")):
        for p, pathology in enumerate(("normal", "edema")):
            for k in range(10):
                _png(tmp_path / "rin" / "radiology_ai" / "MR" / anatomy / pathology / f"{anatomy}{p}{k}.png",
                     a * 100 + p * 10 + k)
    return tmp_path / "rin"


def run(*args: str):
    return CliRunner().invoke(cli, ["datasets", *map(str, args)])


def row(output: str, name: str) -> list[int]:
    """The numbers of the table row of class ``name``."""
    line = next(line for line in output.splitlines() if re.search(rf"\b{re.escape(name)}\b\s*│", line))
    return [int(v) for v in re.findall(r"│\s*(\d+)\s*(?=│)", line)]


def test_list():
    result = run()
    assert result.exit_code == 0
    names = result.output.split()
    assert {"synthetic", "radimagenet-msk", "breastmnist", "chestmnist", "folder:PATH"} <= set(names)
    assert not [n for n in names if n.endswith("3d")]


def test_catalogue_numbers_the_classes():
    result = run()
    assert result.exit_code == 0
    assert "2: 0 malignant | 1 normal + benign" in result.output  # two classes, not three


def test_show_breastmnist(breast):
    result = run("show", "breastmnist", "--data-root", breast)
    assert result.exit_code == 0, result.output
    assert "binary" in result.output
    assert "train (546)" in result.output and "val (78)" in result.output and "test (156)" in result.output
    assert row(result.output, "malignant") == [147, 21, 42]
    assert row(result.output, "normal, benign") == [399, 57, 114]


def test_show_breastmnist_half(breast):
    result = run("show", "breastmnist", "--data-root", breast, "--fraction", "0.5", "--seed", "3")
    assert result.exit_code == 0, result.output
    assert "train (273)" in result.output
    malignant, benign = row(result.output, "malignant")[0], row(result.output, "normal, benign")[0]
    assert abs(malignant - 147 / 2) <= 1 and abs(benign - 399 / 2) <= 1 and malignant + benign == 273


def test_show_synthetic():
    result = run("show", "synthetic", "--size", "16")
    assert result.exit_code == 0, result.output
    assert "multiclass, 4 classes, 1x16x16" in result.output and "train (600)" in result.output


def test_show_folder_with_ratios(image_folder):
    result = run("show", f"folder:{image_folder}", "--split-ratios", "0.5,0.25,0.25", "--size", "16")
    assert result.exit_code == 0, result.output
    assert row(result.output, "benign") == [10, 5, 5] and "1x16x16" in result.output


def test_show_folder_prints_the_preflight_summary_with_duplicates_across_splits(image_folder):
    import shutil

    for k in range(20):  # every benign image twice: copies land in other splits
        shutil.copy(image_folder / "benign" / f"{k}.png", image_folder / "benign" / f"copy{k}.png")
    (image_folder / "malignant" / "bad.png").write_bytes(b"junk")
    result = run("show", f"folder:{image_folder}", "--duplicates", "keep")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "size 8 px (no --size given)" in out and "1x8x8" in out  # what a search would use
    assert "pre-flight summary of folder:" in out and "2 classes, 60 images" in out
    assert re.search(r"20 groups of identical files \(20 extra copies.*\d+ groups span splits \(leakage", out)
    assert re.search(r"near-duplicates .*: 20 groups .*across splits", out)
    grouped = run("show", f"folder:{image_folder}").output  # the default: each copy set in one split
    assert "none spans two splits" in grouped and "(leakage" not in grouped
    assert "skipped: 1 file that cannot be read: 'malignant/bad.png'" in out and "consider --class" not in out


def test_show_radimagenet(msk_tree):
    result = run("show", "radimagenet-msk", "--data-root", msk_tree, "--fraction", "0.5")
    assert result.exit_code == 0, result.output
    assert "5 classes" in result.output
    # 100 images: 65/25/10 split; train floor(0.5 * 65) = 32, val floor(0.3 * 32) = 9, test whole
    assert "train (32)" in result.output and "val (9)" in result.output and "test (10)" in result.output
    for anatomy in ("ankle", "hip", "knee", "shoulder", "spine"):
        train, val, test = row(result.output, anatomy)
        assert train in (6, 7) and val >= 1 and test == 2


def _bad_inputs(tmp: Path) -> dict[str, tuple[list[str], str]]:
    """Each bad input: (arguments after ``datasets show``, text the one-line error must contain)."""
    (tmp / "empty").mkdir()
    _png(tmp / "oneclass" / "only" / "a.png", 1)
    _png(tmp / "noimg" / "a" / "a.png", 1)
    (tmp / "noimg" / "b").mkdir(parents=True)
    for cls in "ab":
        (tmp / "junk" / cls).mkdir(parents=True)
        (tmp / "junk" / cls / "x.png").write_bytes(b"not an image")
    (tmp / "rin").mkdir()
    (tmp / "rin" / "RadiologyAI_train.csv").write_text("path,class\nx.png,knee-normal\n")
    return {
        "unknown-name": (["breastmnistt"], "'breastmnistt'. Did you mean 'breastmnist'?"),
        "3d-name": (["organmnist3d"], "'organmnist3d' is a 3D MedMNIST dataset"),
        "folder-no-path": (["folder:"], "folder: needs a path"),
        "folder-missing": ([f"folder:{tmp / 'missing'}"], f"'{tmp / 'missing'}' does not exist"),
        "folder-empty": ([f"folder:{tmp / 'empty'}"], f"'{tmp / 'empty'}' has no class sub-folders"),
        "class-no-images": ([f"folder:{tmp / 'noimg'}"], f"class folder '{tmp / 'noimg' / 'b'}' has no images"),
        "single-class": ([f"folder:{tmp / 'oneclass'}"], "single class 'only'"),
        "unreadable-only": ([f"folder:{tmp / 'junk'}"], "none of the 2 image files"),
        "fraction-zero": (["synthetic", "--fraction", "0"], "--fraction must be in (0, 1], got 0."),
        "fraction-above-one": (["synthetic", "--fraction", "1.5"], "--fraction must be in (0, 1], got 1.5"),
        "fraction-too-small": (["synthetic", "--fraction", "0.001"], "--fraction 0.001 keeps 0 of 600 training"),
        "csv-columns": (["radimagenet-msk", "--data-root", str(tmp / "rin")], "must have the columns filename,label"),
        "radimagenet-no-root": (["radimagenet-msk"], "radimagenet-msk needs --data-root"),
        "size-out-of-range": (["breastmnist", "--size", "4"], "--size must be between 8 and 1024 pixels, got 4"),
        "medmnist-no-download": (["breastmnist", "--data-root", str(tmp / "empty"), "--no-download"],
                                 "'breastmnist.npz' not found in"),
        "split-ratios": (["synthetic", "--split-ratios", "0.5,0.6,0.1"], "got '0.5,0.6,0.1'"),
    }


BAD_INPUTS = ["unknown-name", "3d-name", "folder-no-path", "folder-missing", "folder-empty", "class-no-images",
              "single-class", "unreadable-only", "fraction-zero", "fraction-above-one", "fraction-too-small",
              "csv-columns", "radimagenet-no-root", "size-out-of-range", "medmnist-no-download", "split-ratios"]


def test_every_bad_input_is_exercised(tmp_path):
    assert sorted(_bad_inputs(tmp_path)) == sorted(BAD_INPUTS)


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_one_line_exit_2(case, tmp_path):
    args, message = _bad_inputs(tmp_path)[case]
    result = run("show", *args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    lines = [line for line in result.stderr.splitlines() if not line.startswith("WARNING")]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], result.stderr


def test_real_command_bad_input_has_no_traceback(tmp_path):
    exe = Path(sys.executable).with_name("nas-med")
    if not exe.is_file():
        pytest.skip(f"the nas-med console script is not installed next to {sys.executable}")
    env = {**os.environ, "NAS_MED_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([str(exe), "datasets", "show", f"folder:{tmp_path / 'nope'}"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"Error: image folder '{tmp_path / 'nope'}' does not exist."
    assert "Traceback" not in proc.stdout + proc.stderr


def test_show_reports_near_duplicates_across_splits(breast):
    result = run("show", "breastmnist", "--data-root", breast, "--no-download")
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("near-duplicates"))
    assert re.search(r"across splits: .*\b[1-9]\d* train-test", line)
    dropped = run("show", "breastmnist", "--data-root", breast, "--no-download", "--duplicates", "drop")
    assert dropped.exit_code == 0 and "dropped (--duplicates drop)" in dropped.output
    bad = run("show", "breastmnist", "--data-root", breast, "--duplicates", "dedupe")
    assert bad.exit_code == 2 and "Traceback" not in bad.output
    assert bad.output.strip().splitlines()[-1].endswith("got 'dedupe'.")
