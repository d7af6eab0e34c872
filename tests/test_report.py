"""``nas-med report``: the page renders with every image loaded in headless Chromium; the figures' numbers are
right (hypervolume, the minimalist marker, learning curves); bad input is one clean error."""
from __future__ import annotations

import base64
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import optuna
import pytest
from click.testing import CliRunner
from PIL import Image

from nas_med.cli.main import cli
from nas_med.report import Scale, collect, hypervolume, hypervolume_curve
from nas_med.report.figures import curves_data, parallel_data, pareto_data
from nas_med.report.hypervolume import exact_hypervolume, to_losses
from nas_med.search.storage import artifact_dir
from nas_med.select import completed, minimalist, pareto_front

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def report_page(tiny_study, tmp_path_factory) -> Path:
    """The report of the tiny study written by the CLI with the default --out, from a temporary working folder."""
    study, config = tiny_study
    work = tmp_path_factory.mktemp("report-cwd")
    before = os.getcwd()
    os.chdir(work)
    try:
        result = CliRunner().invoke(cli, ["report", "--study", study.study_name, "--storage", config.storage])
    finally:
        os.chdir(before)
    assert result.exit_code == 0, result.output
    page = work / "studies" / "reports" / study.study_name / "index.html"
    assert f"Report written to {Path('studies/reports') / study.study_name / 'index.html'}" in result.output
    assert page.is_file()
    return page


@pytest.fixture(scope="module")
def data(tiny_study):
    study, config = tiny_study
    return collect(study, artifact_dir(config.storage))


def _chromium(chromium: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    profile.mkdir()
    return subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.mark.chromium
def test_every_image_loads_in_headless_chromium(report_page, chromium, tmp_path):
    dom = _chromium(chromium, tmp_path, "--virtual-time-budget=10000", "--dump-dom", report_page.as_uri()).stdout
    body = re.search(r"<body[^>]*>", dom)
    assert body, dom[:500]
    assert 'data-images-loaded="true"' in body.group(0), body.group(0)
    count = int(re.search(r'data-image-count="(\d+)"', body.group(0)).group(1))
    assert count >= 6  # 4 figures + the CAM grids of the choice and the minicnn baseline

    shot = tmp_path / "shot.png"
    _chromium(chromium, tmp_path, "--window-size=1200,3000", "--hide-scrollbars", f"--screenshot={shot}",
              report_page.as_uri())
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (3000, 1200)
    assert pixels.std() > 20 and (pixels < 200).mean() > 0.03  # figures drawn, not a blank page


def test_page_is_self_contained_and_embeds_the_cam_artifacts(report_page, data, tiny_study):
    page = report_page.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)  # nothing fetched from a network
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', page)) >= 6
    study, config = tiny_study
    store = artifact_dir(config.storage)
    for trial in [data.choice.trial] + data.baselines:
        blob = (store / trial.user_attrs["cam_artifact"]).read_bytes()
        assert base64.b64encode(blob).decode() in page
    # every completed trial has a row; the choice's row is marked
    assert page.count("<tr class=") == len(completed(study, baselines=None))
    assert re.search(rf'<tr class="choice"><td class="text">★ minimalist</td><td class="">{data.chosen}</td>', page)
    # train/test independence: the study stored its near-duplicate check, the page shows it
    assert "<dt>train/test independence</dt><dd>near-duplicates (perceptual hash, &lt;= 4 of 64 bits apart)" in page


def test_minimalist_marker_is_the_chosen_trial(data, tiny_study):
    study, _ = tiny_study
    choice = minimalist(pareto_front(completed(study)))
    rows = pareto_data(data)
    marked = [r["number"] for r in rows if r["role"] == "choice"]
    assert marked == [choice.trial.number]
    assert {r["number"] for r in rows if r["role"] == "baseline"} == {t.number for t in completed(study, True)}
    front = {t.number for t in pareto_front(completed(study))}
    assert {r["number"] for r in rows if r["role"] in ("front", "choice")} == front
    axes, lines = parallel_data(data)
    assert axes == ["auc", "params", "epoch_seconds", "cam_quality"]
    best_auc = max(lines, key=lambda r: r["auc"])
    assert best_auc["position"]["auc"] == 1.0
    smallest = min(lines, key=lambda r: r["params"])
    assert smallest["position"]["params"] == 1.0  # up is better: fewest parameters on top


def test_hypervolume_curve_is_non_decreasing_and_ends_at_the_study_value(data, tiny_study):
    study, config = tiny_study
    cands = sorted(completed(study), key=lambda t: t.number)
    assert data.hv_trials == [t.number for t in cands]
    hv = np.array(data.hv_values)
    assert np.all(np.diff(hv) >= -1e-12)
    assert 0 < hv[-1] <= 1
    assert hv[-1] == pytest.approx(hypervolume([t.values for t in cands], data.scale))


def test_learning_curves_cover_the_front_and_baselines(data, tiny_study):
    study, config = tiny_study
    curves = curves_data(data)
    expected = {t.number for t in pareto_front(completed(study))} | {t.number for t in completed(study, True)}
    assert {c["number"] for c in curves} == expected
    for c in curves:
        assert [r["epoch"] for r in c["history"]] == list(range(config.epochs))
        assert all(np.isfinite(r["train_loss"]) and np.isfinite(r["val_auc"]) for r in c["history"])


def test_hypervolume_matches_exact_and_known_values():
    rng = np.random.default_rng(0)
    for n in (1, 3, 12):
        points = rng.random((n, 4))
        ref = np.full(4, 1.1)
        from optuna._hypervolume import compute_hypervolume

        assert exact_hypervolume(points, ref) == pytest.approx(compute_hypervolume(points, ref))
    # two points in 2-D: union of boxes [0.2,1]x[0.6,1] and [0.5,1]x[0.1,1] = 0.32 + 0.45 - 0.2 = 0.57
    assert exact_hypervolume(np.array([[0.2, 0.6], [0.5, 0.1]]), np.array([1.0, 1.0])) == pytest.approx(0.57)

    values = [[0.9, 1000, 1.0, 0.2], [0.7, 10, 0.1, -0.1]]  # (auc, params, seconds, cam)
    scale = Scale.fit(values)
    assert to_losses(values)[0].tolist() == pytest.approx([-0.9, 3.0, 0.0, -0.2])
    base = hypervolume(values, scale)
    assert hypervolume(values + [[0.6, 5000, 2.0, -0.2]], scale) == pytest.approx(base)  # dominated: no gain
    assert hypervolume(values + [[0.95, 500, 0.5, 0.3]], scale) > base
    assert hypervolume([[0.95, 10, 0.1, 0.3]], scale) == pytest.approx(1.0)  # ideal point fills the box
    assert hypervolume_curve(values, scale)[-1] == pytest.approx(base)


def _empty_study(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/empty.db"
    study = optuna.create_study(study_name="empty", storage=url, directions=["maximize", "minimize", "minimize",
                                                                           "maximize"])
    study.set_user_attr("nas_med_config", {"dataset": "synthetic", "sampler": "random"})
    return url


def test_bad_input_is_one_clean_error(tiny_study, tmp_path):
    study, config = tiny_study
    runner = CliRunner()
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    out = runner.invoke(cli, ["report", "--study", study.study_name, "--storage", config.storage,
                              "--out", str(blocker / "sub")])
    assert out.exit_code == 2 and out.output.startswith("Error: ") and "a-file" in out.output
    assert "Traceback" not in out.output and not (blocker.parent / "sub").exists()

    out = runner.invoke(cli, ["report", "--study", "tinny", "--storage", config.storage, "--out", str(tmp_path / "r")])
    assert out.exit_code == 2 and "Did you mean 'tiny'" in out.output
    assert not (tmp_path / "r").exists()

    url = _empty_study(tmp_path)
    out = runner.invoke(cli, ["report", "--study", "empty", "--storage", url, "--out", str(tmp_path / "r")])
    assert out.exit_code == 2 and "no completed trial" in out.output
    assert not (tmp_path / "r").exists()


def test_missing_cam_artifacts_are_said_not_broken(data):
    from dataclasses import replace

    from nas_med.report.page import render

    page = render(replace(data, cam_grids={}))
    assert page.count("no CAM grid stored") == 1 + len(data.baselines)
    assert len(re.findall(r"<img ", page)) == 4  # the four figures only: no <img> without a source


def test_published_figures_only_for_a_medmnist_set_at_28px(data):
    import dataclasses

    from nas_med.published import PUBLISHED
    from nas_med.report.page import published_section

    assert published_section(data) == ""                       # synthetic: nothing comparable
    breast = dataclasses.replace(data, config={**data.config, "dataset": "breastmnist", "size": 28})
    html = published_section(breast)
    for method, (auc, _acc) in PUBLISHED["breastmnist"].items():
        assert f"{method} (published, test split)</td><td>{auc:.3f}" in html
    assert f"trial {data.choice.trial.number}: validation AUC" in html and "not test" in html
    assert published_section(dataclasses.replace(breast, config={**breast.config, "size": 64})) == ""
