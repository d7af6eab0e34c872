"""Test-time flips: the flip-averaged module, the choice on validation, and an export whose every format
(PyTorch, TorchScript, ONNX Runtime, ``predict``) averages over the image and its mirror."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from nas_med.arch import ArchSpec, StageSpec, build
from nas_med.arch.flip import FlipAverage, unwrap_flips
from nas_med.data import synthetic
from nas_med.data.splits import pooled
from nas_med.errors import UserError
from nas_med.export import export_study, load, predict_images, read_preprocessing
from nas_med.final.flips import FLIP_MARGIN, FlipScores, decide_flips
from nas_med.final.recipe import FinalRecipe
from nas_med.final.retrain import retrain_and_test
from nas_med.train import TrainConfig


def _net(num_classes: int = 3) -> torch.nn.Module:
    torch.manual_seed(0)
    return build(ArchSpec(1, num_classes, 16, stages=(StageSpec("simple", 8), StageSpec("simple", 16)))).eval()


def test_flip_average_is_mirror_invariant_and_averages_probabilities():
    net = _net()
    model = FlipAverage(net).eval()
    x = torch.randn(4, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out, mirrored = model(x), model(torch.flip(x, [3]))
        expected = (net(x).softmax(1) + net(torch.flip(x, [3])).softmax(1)) / 2
        assert not torch.allclose(net(x), net(torch.flip(x, [3])), atol=1e-4)  # the network alone is not
    assert torch.allclose(out, mirrored, atol=1e-5)
    assert torch.allclose(out.softmax(1), expected, atol=1e-5)
    assert unwrap_flips(model) is net and unwrap_flips(net) is net
    sig = FlipAverage(net, "sigmoid")
    with torch.no_grad():
        p = torch.sigmoid(sig(x))
    assert torch.allclose(p, (torch.sigmoid(net(x)) + torch.sigmoid(net(torch.flip(x, [3])))) / 2, atol=1e-5)


def _scores(off: float, on: float, auc_off: float = 0.8, auc_on: float = 0.8) -> FlipScores:
    s = FlipScores()
    s.loss = {"off": [off, off], "on": [on, on]}
    s.auc = {"off": [auc_off, auc_off], "on": [auc_on, auc_on]}
    return s


def test_flips_are_kept_only_for_a_clearly_lower_validation_loss():
    data = synthetic.load(size=16, n_train=8, n_val=8, n_test=8)
    assert decide_flips("auto", _scores(0.5, 0.5 * (1 - 2 * FLIP_MARGIN)), data)[0]
    assert not decide_flips("auto", _scores(0.5, 0.5 * (1 - FLIP_MARGIN / 2)), data)[0]  # too close: the simpler
    assert not decide_flips("auto", _scores(0.5, 0.4, 0.9, 0.85), data)[0]  # lower loss but a worse AUC
    chosen, record = decide_flips("auto", _scores(0.5, 0.4), data, allowed=False)
    assert not chosen and "laterality" in record["why"]
    assert decide_flips("on", None, data)[0] and not decide_flips("off", _scores(0.5, 0.1), data)[0]
    chosen, record = decide_flips("auto", None, pooled(data))
    assert not chosen and "train + val" in record["why"]


def test_recipe_refuses_flips_at_test_time_where_laterality_forbids_them():
    with pytest.raises(UserError, match="test_flips on needs flips"):
        FinalRecipe(flips=False, test_flips="on")
    with pytest.raises(UserError, match="test_flips must be one of"):
        FinalRecipe(test_flips="sometimes")
    assert FinalRecipe.from_dict({"test_flips": False}).test_flips == "off"  # YAML's off


def test_retrain_settles_flips_on_validation_and_reports_the_choice():
    data = synthetic.load(size=16, n_train=96, n_val=48, n_test=60)
    spec = ArchSpec(1, data.num_classes, 16, stages=(StageSpec("simple", 8), StageSpec("simple", 16)))
    cfg = TrainConfig(epochs=2, device="cpu", precision="fp32")
    report = retrain_and_test(spec, data, cfg, seeds=[0, 1], n_bootstrap=20, keep_model=True, test_flips="auto")
    rec = report.test_flips
    assert set(rec["val_loss"]) == {"off", "on"} and set(rec["test_auc"]) == {"off", "on"}
    assert rec["chosen"] == (rec["val_loss"]["on"] <= rec["val_loss"]["off"] * (1 - FLIP_MARGIN)
                             and rec["val_auc"]["on"] >= rec["val_auc"]["off"] - 0.002)
    assert isinstance(report.model, FlipAverage) == rec["chosen"]
    assert report.summary["auc"]["mean"] == pytest.approx(rec["test_auc"]["on" if rec["chosen"] else "off"])
    off = retrain_and_test(spec, data, cfg, seeds=[0, 1], n_bootstrap=20, test_flips="off")
    assert off.summary["auc"]["mean"] == pytest.approx(rec["test_auc"]["off"])  # same models, same figures


@pytest.fixture(scope="module")
def flipped_export(tiny_study, tmp_path_factory):
    study, _ = tiny_study
    data = synthetic.load(size=16, n_train=96, n_val=48, n_test=60)
    out = tmp_path_factory.mktemp("flips") / "model"
    recipe = FinalRecipe(epochs=2, augment="none", test_flips="on")
    result = export_study(study, out, seeds=1, n_bootstrap=50, data=data, cam_images=4, calibration_folds=0,
                          recipe=recipe)
    return out, result, data


def test_export_bakes_flips_into_every_format(flipped_export, tmp_path):
    out, result, data = flipped_export
    spec = json.loads((out / "spec.json").read_text())
    assert spec["test_flips"] is True and read_preprocessing(out)["test_flips"] is True
    model = load(out)
    assert isinstance(model, FlipAverage)
    assert result.parity["onnxruntime"] <= 1e-4 and result.parity["torchscript"] <= 1e-4
    x = torch.randn(3, 1, 16, 16, generator=torch.Generator().manual_seed(3))
    import onnxruntime as ort

    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.load(str(out / "model.torchscript.pt"))
    for run in (lambda t: model(t), scripted, lambda t: torch.from_numpy(session.run(None, {"input": t.numpy()})[0])):
        with torch.no_grad():
            assert torch.allclose(run(x), run(torch.flip(x, [3])), atol=1e-4)  # mirror-invariant in every format
    img = data.test.images[0, 0].numpy()
    Image.fromarray(img).save(tmp_path / "a.png")
    Image.fromarray(np.ascontiguousarray(img[:, ::-1])).save(tmp_path / "mirror.png")
    a, b = predict_images(out, [tmp_path / "a.png", tmp_path / "mirror.png"], cam_out=tmp_path / "cams")
    assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-5)
    card = (out / "README.md").read_text()
    assert "horizontal mirror (test-time flips" in card and "on in the recipe" in card
    assert json.loads((out / "metrics.json").read_text())["test"]["test_flips"]["chosen"] is True


def test_a_folder_whose_files_disagree_on_flips_is_refused(flipped_export, tmp_path):
    import shutil

    out, _, _ = flipped_export
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    pre = json.loads((copy / "preprocessing.json").read_text())
    pre["test_flips"] = False
    (copy / "preprocessing.json").write_text(json.dumps(pre))
    with pytest.raises(UserError, match="disagree on test_flips"):
        load(copy)
