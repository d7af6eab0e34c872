"""Prediction sets (split conformal, LAC) and calibration fitted on out-of-fold predictions (issue 26)."""
from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from nas_med.cli.main import cli
from nas_med.conformal import check_coverage, coverage_report, lac_scores, prediction_sets, quantile
from nas_med.errors import UserError


def test_quantile_is_the_textbook_rule():
    rng = np.random.default_rng(0)
    for n in (1, 5, 9, 10, 78, 500):
        scores = rng.random(n)
        for coverage in (0.5, 0.8, 0.9, 0.95):
            k = math.ceil((n + 1) * coverage)
            # the k-th smallest score (Vovk et al.; Angelopoulos & Bates 2021, sec. 1): the empirical quantile at
            # k / n by the inverted CDF (numpy's "higher" at k / n would take the (k + 1)-th: over-covers)
            expected = float("inf") if k > n else float(np.quantile(scores, k / n, method="inverted_cdf"))
            assert quantile(scores, coverage) == expected, (n, coverage)
    assert quantile([0.3, 0.1, 0.2], 0.5) == 0.2  # ceil(4 * 0.5) = 2nd smallest


def test_sets_cover_exchangeable_images_at_the_chosen_rate():
    rng = np.random.default_rng(1)
    covered, sizes = [], []
    for _ in range(300):
        probs = rng.dirichlet([0.7, 0.7, 0.7], 300)
        labels = np.array([rng.choice(3, p=p) for p in probs])  # probabilities honest: exchangeable draws
        cal, test = slice(0, 100), slice(100, 300)
        qhat = quantile(lac_scores(probs[cal], labels[cal]), 0.9)
        sets = prediction_sets(probs[test], qhat)
        covered.append(sets[np.arange(200), labels[test]].mean())
        sizes.append(sets.sum(1).mean())
    assert 0.9 <= np.mean(covered) <= 0.9 + 1 / 101 + 0.005  # the guarantee, up to Monte Carlo noise
    assert 1 < np.mean(sizes) < 3


def test_coverage_report_and_bad_coverage():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.45, 0.55]])
    rep = coverage_report(lac_scores(probs, [0, 1, 1, 0]), probs, np.array([0, 1, 1, 0]), 0.5, "test")
    assert rep["scores"] == sorted(rep["scores"]) and rep["n_calibration"] == 4
    assert rep["test"]["coverage"] >= 0.5 and rep["guarantee"] == [0.5, 0.5 + 1 / 5]
    for bad in (0, 1, 1.5, -0.1, float("nan"), "x"):
        with pytest.raises(UserError, match="--coverage must"):
            check_coverage(bad)


def test_out_of_fold_calibration_and_prediction_sets_in_the_export(breast_minicnn_export):
    out, data, held = breast_minicnn_export
    assert held.logits.shape == (546 + 78, 2) and held.kind == "out-of-fold"
    assert np.abs(held.logits).sum(1).min() > 0  # every pooled image got its held-out logits
    op = json.loads((out / "operating_point.json").read_text())
    assert op["calibration_source"] == "out-of-fold" and op["n_fit"] == 624
    conf = op["conformal"]
    assert conf["coverage"] == 0.9 and conf["n_calibration"] == 624 and len(conf["scores"]) == 624
    # the stored scores reproduce the stored threshold, and the test figures follow from it
    assert quantile(conf["scores"], 0.9) == pytest.approx(conf["qhat"], abs=1e-6)
    assert 0 <= conf["test"]["coverage"] <= 1 and 0 <= conf["test"]["mean_set_size"] <= 2
    card = (out / "README.md").read_text()
    assert "## Prediction sets" in card and "empirical coverage" in card
    assert "out-of-fold predictions on train + val (624 images" in card
    assert re.search(r"\*\*test \d\.\d{3} before -> \d\.\d{3} after\*\*", card)
    helped = op["ece"]["test_after"] <= op["ece"]["test_before"]
    assert helped == op["scaling_helped_on_test"] and (("Scaling did not help on test" in card) != helped)
    assert "Train/test independence: Near-duplicates" in card and "train-test" in card
    # subgroups of the test split (--metadata): every test image in one group per attribute; site b is too small
    groups = {(g["attribute"], g["value"]): g for g in op["subgroups"]}
    assert groups[("sex", "F")]["n"] + groups[("sex", "M")]["n"] == 156 and groups[("site", "b")]["n"] == 6
    assert groups[("site", "b")]["too_small"] and not groups[("sex", "F")]["too_small"]
    assert "## Subgroups of the test split" in card and re.search(r"\| site \| b \| 6 \(.*too few to say", card)


def test_predict_returns_sets_at_the_stored_or_given_coverage(breast_minicnn_export, tmp_path):
    out, data, _ = breast_minicnn_export
    paths = []
    for i in range(6):
        path = tmp_path / f"{i}.png"
        Image.fromarray(data.test.images[i, 0].numpy()).save(path)
        paths.append(str(path))
    result = CliRunner().invoke(cli, ["predict", str(out), *paths, "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert all(r["coverage"] == 0.9 and set(r["prediction_set"]) <= set(data.classes) for r in rows)
    wide = json.loads(CliRunner().invoke(cli, ["predict", str(out), *paths, "--json", "--coverage", "0.99"]).output)
    narrow = json.loads(CliRunner().invoke(cli, ["predict", str(out), *paths, "--json", "--coverage", "0.5"]).output)
    for n, r, w in zip(narrow, rows, wide):  # a higher coverage never gives a smaller set
        assert set(n["prediction_set"]) <= set(r["prediction_set"]) <= set(w["prediction_set"])
    text = CliRunner().invoke(cli, ["predict", str(out), paths[0]]).output
    assert "set at 90%: {" in text
    for bad in ("1.5", "0", "1"):
        result = CliRunner().invoke(cli, ["predict", str(out), paths[0], "--coverage", bad])
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert result.output.strip().splitlines()[-1].startswith("Error: --coverage must be in (0, 1)")


def test_an_export_without_prediction_sets_refuses_coverage(breast_minicnn_export, tmp_path):
    import shutil

    out, data, _ = breast_minicnn_export
    old = tmp_path / "old"
    shutil.copytree(out, old)
    op = json.loads((old / "operating_point.json").read_text())
    del op["conformal"]  # as written before prediction sets existed
    (old / "operating_point.json").write_text(json.dumps(op))
    path = tmp_path / "x.png"
    Image.fromarray(data.test.images[0, 0].numpy()).save(path)
    rows = json.loads(CliRunner().invoke(cli, ["predict", str(old), str(path), "--json"]).output)
    assert "prediction_set" not in rows[0] and rows[0]["prediction"] in data.classes
    result = CliRunner().invoke(cli, ["predict", str(old), str(path), "--coverage", "0.8"])
    assert result.exit_code == 2 and "stores no prediction-set calibration" in result.output
    op["conformal"] = {"scores": [0.1, "x"], "coverage": 0.9}
    (old / "operating_point.json").write_text(json.dumps(op))
    result = CliRunner().invoke(cli, ["predict", str(old), str(path)])
    assert result.exit_code == 2 and "'conformal' must hold" in result.output
