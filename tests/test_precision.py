"""Training precision: detection of bf16 CPUs, resolution of auto per device, channels-last only where safe, the
precision recorded on every trial, bf16 training close to fp32."""
from __future__ import annotations

import optuna
import pytest
import torch

from nas_med import precision as P
from nas_med.arch import ArchSpec, StageSpec, build
from nas_med.arch.spec import HeadSpec
from nas_med.data import load_dataset
from nas_med.errors import UserError
from nas_med.search.config import SearchConfig
from nas_med.search.runner import search
from nas_med.train import TrainConfig, train


def _flags() -> set[str]:
    for line in open("/proc/cpuinfo").read().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


@pytest.fixture
def no_bf16_cpu(monkeypatch):
    monkeypatch.setattr(P, "cpu_bf16_flags", lambda: ())


def test_auto_is_bf16_on_a_cpu_with_bf16_arithmetic():
    expected = bool(_flags() & {"amx_bf16", "avx512_bf16"})
    assert P.cpu_has_bf16() is expected
    resolved = P.resolve_precision("auto", "cpu")
    assert resolved.name == ("bf16" if expected else "fp32")
    assert resolved.dtype == (torch.bfloat16 if expected else None) and not resolved.needs_scaler


def test_auto_is_fp32_on_a_cpu_without_bf16(no_bf16_cpu):
    resolved = P.resolve_precision("auto", "cpu")
    assert (resolved.name, resolved.autocast, resolved.channels_last) == ("fp32", False, False)
    assert P.resolve_precision("bf16", "cpu").name == "bf16"  # asked for: honoured (emulated), with a warning


def test_explicit_precisions_and_bad_names():
    assert P.resolve_precision("fp32", "cpu").name == "fp32"
    assert P.resolve_precision("fp16", "cpu").needs_scaler
    assert P.resolve_precision("auto", "mps").name == "fp32"
    with pytest.raises(UserError, match="unknown precision 'bf61'. Did you mean 'bf16'"):
        P.resolve_precision("bf61", "cpu")
    with pytest.raises(UserError, match="unknown precision"):
        SearchConfig(precision="half").validate()


def test_channels_last_only_where_safe():
    plain = build(ArchSpec(1, 2, 32, (StageSpec("simple", 8, norm="batch"), StageSpec("simple", 16))))
    shortcut = torch.nn.Sequential(torch.nn.Conv2d(8, 8, 1, stride=2))
    assert P.resolve_precision("bf16", "cpu").channels_last and not P.resolve_precision("fp32", "cpu").channels_last
    assert P.channels_last_safe(plain, "cpu") and not P.channels_last_safe(shortcut, "cpu")
    assert P.channels_last_safe(shortcut, "cuda")


def test_strided_pointwise_convs_run_as_slices_with_the_same_result():
    conv = torch.nn.Conv2d(4, 6, 1, stride=2)
    x = torch.randn(2, 4, 9, 9)
    expected = conv(x)
    with P.strided_pointwise_as_slices(conv) as changed:
        assert changed == 1 and P.channels_last_safe(conv, "cpu")
        torch.testing.assert_close(conv(x), expected)
    assert conv.stride == (2, 2) and not conv._forward_pre_hooks and not P.channels_last_safe(conv, "cpu")


def test_a_residual_model_trains_channels_last_in_bf16_and_comes_back_unchanged():
    data = load_dataset("synthetic", size=16)
    spec = ArchSpec(1, 4, 16, (StageSpec("basic", 8, norm="batch"), StageSpec("basic", 16, norm="batch")))
    model = build(spec)
    assert not P.channels_last_safe(model, "cpu")  # a projection shortcut: 1x1 stride 2
    result = train(model, data, TrainConfig(epochs=1, precision="bf16", device="cpu"))
    assert result.channels_last and result.precision == "bf16"
    assert not P.channels_last_safe(result.model, "cpu")  # strides restored, hooks gone
    assert all(not m._forward_pre_hooks for m in result.model.modules())
    assert all(p.is_contiguous() and p.dtype == torch.float32 for p in result.model.parameters())


def test_bf16_and_fp32_training_agree_on_validation_auc():
    data = load_dataset("synthetic", size=16)
    spec = ArchSpec(1, 4, 16, (StageSpec("simple", 8, norm="batch"), StageSpec("simple", 16, norm="batch")),
                    None, HeadSpec("gap_linear"))
    aucs = {}
    for name in ("fp32", "bf16"):
        torch.manual_seed(0)
        result = train(build(spec), data, TrainConfig(epochs=3, lr=3e-3, precision=name, device="cpu"))
        assert result.precision == name
        aucs[name] = result.val["auc"]
    assert abs(aucs["bf16"] - aucs["fp32"]) < 0.05, aucs


@pytest.mark.parametrize("asked", ["auto", "fp32"])
def test_every_trial_records_its_precision(isolated, tmp_path, asked):
    config = SearchConfig(dataset="synthetic", size=16, space="tiny", trials=2, epochs=1, cam_images=4,
                          pruner="none", quiet=True, artifacts=False, precision=asked,
                          storage=f"sqlite:///{tmp_path}/p.db", study="p")
    study = search(config)
    expected = P.resolve_precision(asked, "cpu").name
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert done and all(t.user_attrs["precision"] == expected for t in done)
    assert all(t.user_attrs["train_config"]["precision"] == asked for t in done)
    assert all(t.user_attrs["epoch_seconds_raw"] > 0 for t in done)
    assert study.user_attrs["nas_med_config"]["precision"] == asked


def test_a_study_made_before_precision_existed_resumes(isolated, tmp_path):
    url = f"sqlite:///{tmp_path}/old.db"
    kwargs = dict(dataset="synthetic", size=16, space="tiny", trials=1, epochs=1, cam_images=4, pruner="none",
                  quiet=True, artifacts=False, storage=url, study="old")
    study = search(SearchConfig(**kwargs))
    stored = dict(study.user_attrs["nas_med_config"])
    stored.pop("precision")
    study.set_user_attr("nas_med_config", stored)  # as an older nas-med stored it
    study = search(SearchConfig(**kwargs, precision="fp32"))
    assert len(study.trials) == 2 and study.trials[-1].user_attrs["precision"] == "fp32"
