"""``nas-med front``, ``export`` and ``predict`` from the command line, on the shared tiny study."""
from __future__ import annotations

import json

import pytest
from cli_invoke import invoke  # tests/cli_invoke.py
from PIL import Image

from nas_med.data import synthetic
from nas_med.export import FILES
from nas_med.export import study as export_study_module
from nas_med.export.load import EXAMPLES
from nas_med.final import plan as final_plan
from nas_med.select import choose


@pytest.fixture(scope="module")
def small_data():
    return synthetic.load(size=16, n_train=128, n_val=64, n_test=90)


@pytest.fixture
def quick_data(monkeypatch, small_data):
    """Retraining reads this small stand-in for the study's data (tests/final/test_retrain.py loads the real one)."""
    monkeypatch.setattr(final_plan, "load_study_data", lambda study: small_data)
    monkeypatch.setattr(export_study_module, "load_study_data", lambda study: small_data)


def where(tiny_study) -> list[str]:
    study, config = tiny_study
    return ["--study", study.study_name, "--storage", config.storage]


def test_front_marks_the_minimalist_choice_and_says_why(tiny_study):
    result = invoke(["front", *where(tiny_study)])
    assert result.exit_code == 0, result.output
    pick = choose(tiny_study[0]).trial.number
    assert f"★ minimalist choice: trial {pick} has the fewest parameters" in result.output
    assert "within 0.01 of the best" in result.output
    rows = [line for line in result.output.splitlines() if line.startswith("│")]
    assert sum("★" in r for r in rows) == 1 and any("baseline" in r and "minicnn" in r for r in rows)
    chosen = invoke(["front", *where(tiny_study), "--trial", "0"])
    assert chosen.exit_code == 0 and "★ chosen: trial 0, baseline minicnn, was selected with --trial" in chosen.output


def test_front_prefer_and_its_errors(tiny_study):
    fast = invoke(["front", *where(tiny_study), "--prefer", "epoch_seconds", "--auc-tolerance", "1"])
    assert fast.exit_code == 0 and "has the shortest epoch time" in fast.output
    bad = invoke(["front", *where(tiny_study), "--prefer", "speed"])
    assert bad.exit_code == 2 and "Error: unknown objective in --prefer 'speed'" in bad.output
    assert "Traceback" not in bad.output
    gone = invoke(["front", *where(tiny_study), "--trial", "77"])
    assert gone.exit_code == 2 and "--trial 77 is not a completed trial" in gone.output
    helped = invoke(["front", "--help"])
    assert "take the fewest parameters" in " ".join(helped.output.split())


def test_front_retrain_prints_test_metrics_with_intervals(tiny_study, quick_data):
    result = invoke(["front", *where(tiny_study), "--retrain", "--seeds", "1", "--no-baselines",
                                 "--bootstrap", "100", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "Test split (90 images)" in result.output and "95% bootstrap CI" in result.output
    row = next(line for line in result.output.splitlines() if "★ trial" in line and "[" in line)
    assert row.count("[") >= 4  # an interval for AUC, accuracy, sensitivity and specificity


def test_export_then_predict(tiny_study, tmp_path, quick_data):
    out = tmp_path / "model"
    result = invoke(["export", *where(tiny_study), "--out", str(out), "--seeds", "1",
                                 "--bootstrap", "100", "--cam-images", "4", "--no-distil"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES + (EXAMPLES,))
    settled = json.loads((out / "metrics.json").read_text())["test"]["settled"]
    assert settled and all("distil" not in row for row in settled)  # --no-distil: no teacher was tried
    assert "★ minimalist choice: trial" in result.output and "parity" in result.output
    again = invoke(["export", *where(tiny_study), "--out", str(out)])
    assert again.exit_code == 2 and "not empty; use --force" in again.output

    test = synthetic.generate(3, size=16, seed=5)
    images = []
    for i in range(3):
        images.append(tmp_path / f"scan{i}.png")
        Image.fromarray(test.images[i, 0].numpy()).save(images[-1])
    shown = invoke(["predict", str(out), *map(str, images), "--json", "--cam-out", str(tmp_path / "c")])
    assert shown.exit_code == 0, shown.output
    rows = json.loads(shown.output)
    assert [r["image"] for r in rows] == [str(p) for p in images]
    for r in rows:
        assert set(r["probabilities"]) == {"normal", "mass", "cyst", "calcification"}
        assert sum(r["probabilities"].values()) == pytest.approx(1, abs=1e-5)
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == [f"scan{i}.cam.png" for i in range(3)]
    text = invoke(["predict", str(out), str(images[0])])
    assert text.exit_code == 0 and text.output.startswith(f"{images[0]}: normal 0.")
    missing = invoke(["predict", str(out), str(tmp_path / "nope.png")])
    assert missing.exit_code == 2 and "Error: image" in missing.output and "does not exist" in missing.output


def test_export_errors_are_one_line(tiny_study, tmp_path):
    blocked = tmp_path / "blocked"
    blocked.write_text("a file")
    result = invoke(["export", *where(tiny_study), "--out", str(blocked / "model")])
    assert result.exit_code == 2 and result.output.startswith("Error: cannot write --out")
    unknown = invoke(["export", "--study", "nope", "--storage", tiny_study[1].storage, "--out",
                                  str(tmp_path / "m")])
    assert unknown.exit_code == 2 and "Error: unknown study" in unknown.output
    assert not (tmp_path / "m").exists()
