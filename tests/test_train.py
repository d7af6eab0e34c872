"""Training of one candidate: the kept epoch, failure reasons, multi-label loss."""
from __future__ import annotations

import math

import pytest
import torch

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
    assert min(h["seconds"] for h in result.history) <= result.epoch_seconds <= max(h["seconds"] for h in result.history)


def test_nan_loss_fails_with_reason(synthetic16):
    with pytest.raises(TrainingFailed, match="non-finite"):
        train(build(tiny_spec()), synthetic16, TrainConfig(epochs=2, lr=1e30))


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
