"""Training of one candidate: the kept epoch, failure reasons, multi-label loss."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

import nas_med
from nas_med.arch import ArchSpec, StageSpec, build
from nas_med.data import load_dataset
from nas_med.data.types import Dataset, Split
from nas_med.errors import UserError
from nas_med.train import Normalizer, TrainConfig, TrainingFailed, pick_device, train


def tiny_spec(classes: int = 4, size: int = 16) -> ArchSpec:
    return ArchSpec(1, classes, size, stages=(StageSpec("simple", 8, norm="batch"), StageSpec("simple", 16)))


@pytest.fixture(scope="module")
def synthetic16():
    return load_dataset("synthetic", size=16)


def test_keeps_the_epoch_with_lowest_validation_loss(synthetic16):
    result = train(build(tiny_spec()), synthetic16, TrainConfig(epochs=4, lr=3e-3))
    losses = [h["val_loss"] for h in result.history]
    assert len(result.history) == 4
    assert result.best_epoch == losses.index(min(losses))
    assert result.val["loss"] == pytest.approx(min(losses))
    assert 0.5 < result.val["auc"] <= 1.0
    # epoch_seconds: steps x a low quantile of the step times (no more than an epoch's wall time); the raw median
    # of the epochs' wall times beside it
    assert 0 < result.epoch_seconds <= max(h["seconds"] for h in result.history)
    assert min(h["seconds"] for h in result.history) <= result.epoch_seconds_raw <= max(h["seconds"] for h in
                                                                                       result.history)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_nan_loss_fails_with_reason(synthetic16, precision):
    with pytest.raises(TrainingFailed, match=r"non-finite training loss \((nan|inf)\) at epoch 0"):
        train(build(tiny_spec()), synthetic16, TrainConfig(epochs=2, lr=1e30, precision=precision))


SYNC_METHODS = ("item", "__bool__", "__float__", "__int__", "tolist", "cpu", "numpy")


def count_syncs(monkeypatch) -> dict:
    """Patch the Tensor methods that read a value back to the host (``.item()``, ``if tensor:`` as in
    ``if torch.isfinite(loss)``, ...) and count the calls made by nas-med's own code; returns the live counts.
    (torch's Adam reads its CPU-held step counters with ``.item()``: host memory, no device sync.)"""
    counts = dict.fromkeys(SYNC_METHODS, 0)
    package = str(Path(nas_med.__file__).parent)
    for name in SYNC_METHODS:
        original = getattr(torch.Tensor, name)

        def wrapper(self, *args, _name=name, _original=original, **kwargs):
            if sys._getframe(1).f_code.co_filename.startswith(package):
                counts[_name] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, wrapper)
    return counts


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_no_host_sync_inside_the_batch_loop(synthetic16, monkeypatch, precision):
    """The per-batch loop reads nothing back from the device: the number of reads does not grow with the number
    of batches (batch 4 runs 8x the steps of batch 32), so per batch it is zero."""
    counts = count_syncs(monkeypatch)
    per_run = []
    for batch in (32, 4):
        for key in counts:
            counts[key] = 0
        result = train(build(tiny_spec()), synthetic16,
                       TrainConfig(epochs=2, lr=3e-3, batch_size=batch, precision=precision, device="cpu"))
        assert len(result.history) == 2 and all(math.isfinite(h["train_loss"]) for h in result.history)
        per_run.append(dict(counts))
    assert len(synthetic16.train) // 4 >= 8 * (len(synthetic16.train) // 32)
    assert per_run[0] == per_run[1], per_run  # same reads with 8x the batches: none of them per batch


def test_bf16_training_returns_an_fp32_contiguous_model(synthetic16):
    result = train(build(tiny_spec()), synthetic16, TrainConfig(epochs=1, precision="bf16", device="cpu"))
    assert result.precision == "bf16"
    for p in result.model.parameters():
        assert p.dtype == torch.float32 and p.is_contiguous()
    assert all(v.dtype != torch.bfloat16 for v in result.model.state_dict().values())


def test_amp_flag_of_old_studies_maps_to_precision():
    assert TrainConfig.from_dict({"epochs": 2, "amp": False}).precision == "fp32"
    assert TrainConfig.from_dict({"epochs": 2, "amp": True}).precision == "auto"
    assert TrainConfig.from_dict({"precision": "bf16", "amp": False, "unknown": 1}).precision == "bf16"
    assert "amp" not in TrainConfig().to_dict()


def test_on_epoch_hook_sees_every_epoch_and_can_stop(synthetic16):
    seen = []

    class Stop(Exception):
        pass

    def hook(epoch, record):
        seen.append(record["val_auc"])
        if epoch == 1:
            raise Stop

    with pytest.raises(Stop):
        train(build(tiny_spec()), synthetic16, TrainConfig(epochs=5), on_epoch=hook)
    assert len(seen) == 2 and all(0 <= v <= 1 for v in seen)


def test_multilabel_trains_with_bce():
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 255, (120, 1, 16, 16), dtype=torch.uint8, generator=gen)
    labels = torch.stack([(images[:, 0, :8].float().mean((1, 2)) > 127), (images[:, 0, 8:].float().mean((1, 2)) > 127),
                          torch.rand(120, generator=gen) > 0.5], 1).float()
    split = Split(images, labels)
    data = Dataset("ml", "multilabel", ["a", "b", "c"], split, split, split)
    result = train(build(tiny_spec(classes=3)), data, TrainConfig(epochs=2))
    assert math.isfinite(result.val["loss"]) and 0 <= result.val["auc"] <= 1


def test_normalizer_standardises_training_images(synthetic16):
    norm = Normalizer(synthetic16.train.images)
    x = norm(synthetic16.train.images)
    assert abs(x.mean().item()) < 1e-3 and abs(x.std().item() - 1) < 1e-2


def test_device_names_are_checked():
    assert pick_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(UserError, match="nonsense"):
        pick_device("nonsense")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA"):
            pick_device("cuda")
