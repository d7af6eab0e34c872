"""A fold-ensemble export: one model averaging K members, equal in every format in a fresh process."""
from __future__ import annotations

import json

import pytest
import torch
from test_export import run_fresh  # noqa: E402  (tests/ is on sys.path under pytest)

from nas_med.arch import build, count_params
from nas_med.arch.ensemble import Ensemble
from nas_med.data import synthetic
from nas_med.errors import UserError
from nas_med.export import export_study
from nas_med.export.load import load, predict_images, read_spec
from nas_med.final.recipe import FinalRecipe

K = 3


@pytest.fixture(scope="module")
def ensemble_export(tiny_study, tmp_path_factory):
    study, _ = tiny_study
    data = synthetic.load(size=16, n_train=96, n_val=48, n_test=60)
    out = tmp_path_factory.mktemp("ensemble") / "model"
    result = export_study(study, out, seeds=1, n_bootstrap=50, data=data, cam_images=4,
                          recipe=FinalRecipe(epochs=2, folds=K))
    return out, result, data


def test_folder_holds_one_ensemble_of_k_members(ensemble_export):
    out, result, _ = ensemble_export
    spec_json = json.loads((out / "spec.json").read_text())
    assert spec_json["ensemble"] == K and spec_json["ensemble_average"] == "softmax"
    model = load(out)
    assert isinstance(model, Ensemble) and len(model.members) == K
    spec = read_spec(out)
    assert count_params(model) == K * count_params(build(spec))  # the ensemble's total
    assert "3-fold ensemble" in result.report.name
    assert max(result.parity.values()) <= 1e-4


def test_fresh_process_all_formats_agree(ensemble_export):
    out, _, _ = ensemble_export
    res = run_fresh(out)
    assert res["torchscript"] <= 1e-4 and res["onnxruntime"] <= 1e-4
    x = torch.randn(5, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        model = load(out)
        here = model(x)
        members = torch.stack([torch.softmax(m(x * model.scale[i].view(1, -1, 1, 1)
                                               + model.shift[i].view(1, -1, 1, 1)), 1)
                               for i, m in enumerate(model.members)]).mean(0)
    assert torch.allclose(torch.tensor(res["logits"]), here, atol=1e-5)
    assert torch.allclose(torch.softmax(here, 1), members, atol=1e-5)  # the members' mean probability


def test_predict_uses_the_ensemble(ensemble_export, tmp_path):
    from PIL import Image

    out, _, data = ensemble_export
    path = tmp_path / "a.png"
    Image.fromarray(data.test.images[0, 0].numpy()).save(path)
    rows = predict_images(out, [path], cam_out=tmp_path / "cams")
    assert abs(sum(rows[0]["probabilities"].values()) - 1) < 1e-5 and rows[0]["cam"]


def test_a_bad_ensemble_count_is_refused(ensemble_export, tmp_path):
    import shutil

    out, _, _ = ensemble_export
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    spec = json.loads((bad / "spec.json").read_text())
    (bad / "spec.json").write_text(json.dumps({**spec, "ensemble": 2}))
    with pytest.raises(UserError, match="do not fit spec.json"):
        load(bad)
    (bad / "spec.json").write_text(json.dumps({**spec, "ensemble": 0}))
    with pytest.raises(UserError, match="'ensemble' must be an integer"):
        load(bad)
