"""Grad-CAM of a candidate: methods, target layer, model state left as found, mask score, and the sanity check
that ROAD ranks a real CAM above a random map above an inverted CAM on a trained model."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from nas_med.arch import build, cam_target_layer
from nas_med.arch.spec import ArchSpec, HeadSpec, StageSpec
from nas_med.errors import UserError
from nas_med.objectives.cam import CAM_METHODS, compute_cams, evaluate_cams, mask_energy
from nas_med.objectives.road import road_combined

HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
              "_forward_hooks_with_kwargs", "_forward_pre_hooks_with_kwargs", "_forward_hooks_always_called")


def _spec(widths, downsample, size, norm="batch") -> ArchSpec:
    stages = tuple(StageSpec("simple", w, 1, 3, norm, "relu", d) for w, d in zip(widths, downsample, strict=True))
    return ArchSpec(1, 4, size, stages, None, HeadSpec("gap_linear"))


def _hooks(model: nn.Module) -> dict[str, int]:
    """Number of hooks of every kind left on any module of ``model``."""
    return {f"{name}.{attr}": len(getattr(m, attr)) for name, m in model.named_modules()
            for attr in HOOK_DICTS if getattr(m, attr, None)}


@pytest.fixture(scope="module")
def trained():
    """A small CNN trained 4 epochs on synthetic 32 px, and 16 validation lesion images it classifies right."""
    from nas_med.data import load_dataset
    from nas_med.train import Normalizer, TrainConfig, train

    data = load_dataset("synthetic", size=32, seed=0)
    torch.manual_seed(0)                                          # the initial weights, whatever ran before
    spec = _spec((16, 32, 64), (True, True, False), 32)          # last map 8x8: a usable CAM resolution
    model = build(spec)
    result = train(model, data, TrainConfig(epochs=4, lr=3e-3, batch_size=32, precision="fp32", device="cpu", seed=0))
    model = result.model.float().eval()
    images = Normalizer(data.train.images)(data.val.images)
    with torch.no_grad():
        pred = model(images).argmax(1)
    right = torch.nonzero((data.val.labels != 0) & (pred == data.val.labels)).flatten()[:16]
    assert len(right) >= 12, f"the model learnt too little to test CAMs (val AUC {result.val['auc']:.3f})"
    return model, images[right], data.val.masks[right].numpy(), pred[right].tolist(), cam_target_layer(model, spec)


def test_road_ranks_real_cam_above_random_above_inverted(trained) -> None:
    model, images, _, targets, layer = trained
    cams = compute_cams(model, images, targets, layer=layer)
    rand = np.random.default_rng(0).random(cams.shape, dtype=np.float32)

    def road(maps: np.ndarray) -> float:
        return float(road_combined(model, images, maps, targets, generator=torch.Generator().manual_seed(0)).mean())

    real, random, inverted = road(cams), road(rand), road(1 - cams)
    assert real > random + 0.04, (real, random, inverted)
    assert inverted < random - 0.04, (real, random, inverted)


def test_mask_energy_of_real_cam_beats_random(trained) -> None:
    model, images, masks, targets, layer = trained
    cams = compute_cams(model, images, targets, layer=layer)
    rand = np.random.default_rng(0).random(cams.shape, dtype=np.float32)
    real, random = mask_energy(cams, masks), mask_energy(rand, masks)
    assert random == pytest.approx(masks.mean(axis=(1, 2)).mean(), abs=0.01)  # a flat map scores the mask's area
    assert real > 2 * random, (real, random)


def test_evaluate_cams_on_trained_model(trained) -> None:
    model, images, masks, targets, layer = trained
    result = evaluate_cams(model, images, torch.from_numpy(masks), layer=layer)
    assert result.targets == targets  # the predicted class
    assert result.cams.shape == (len(images), 32, 32)
    assert 0 <= result.cams.min() and result.cams.max() <= 1
    assert result.cam_quality == pytest.approx(float(np.mean(result.road_per_image)))
    assert result.cam_quality > 0.04
    assert 0 < result.mask_energy <= 1
    again = evaluate_cams(model, images, layer=layer)   # no masks: no localization score
    assert np.isnan(again.mask_energy)
    assert again.cam_quality == result.cam_quality                 # the same imputation noise every time


def test_mask_energy_on_hand_made_maps() -> None:
    masks = np.zeros((3, 4, 4), dtype=bool)
    masks[:, :2, :2] = True                       # a quarter of every image
    inside = np.zeros((3, 4, 4), np.float32)
    inside[:, 0, 0] = 1.0
    outside = np.zeros((3, 4, 4), np.float32)
    outside[:, 3, 3] = 1.0
    flat = np.ones((3, 4, 4), np.float32)
    half = inside + outside
    assert mask_energy(inside, masks) == pytest.approx(1.0)
    assert mask_energy(outside, masks) == pytest.approx(0.0)
    assert mask_energy(flat, masks) == pytest.approx(0.25)
    assert mask_energy(half, masks) == pytest.approx(0.5)
    # images with an empty mask are left out of the mean; an all-zero map counts as a flat one (area share)
    masks[2] = False
    mixed = np.stack([inside[0], outside[1], flat[2]])
    assert mask_energy(mixed, masks) == pytest.approx(0.5)
    assert mask_energy(np.stack([inside[0], np.zeros((4, 4), np.float32), flat[2]]), masks) == pytest.approx(0.625)
    assert np.isnan(mask_energy(flat, np.zeros_like(masks)))
    with pytest.raises(ValueError, match="shape"):
        mask_energy(flat, masks[:, :2])


def test_cams_of_the_arch_target_layer_vary_over_the_image() -> None:
    # 16 px, four halving stages: maps 8, 4, 2, 1 -> the layer comes from arch.cam_target_layer (the search's)
    spec = _spec((4, 8, 8, 8), (True,) * 4, 16)
    model = build(spec)
    layer = cam_target_layer(model, spec)
    assert layer is model.stages[1] or layer is model.stages[2]
    cams = compute_cams(model, torch.randn(2, 1, 16, 16), [0, 1], layer=layer)
    assert cams.shape == (2, 16, 16) and cams.std() > 0   # a 1x1 map would give a constant, all-zero CAM
    assert not _hooks(model)


def test_no_layer_gives_zero_cams() -> None:
    model = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4, 2))
    assert not compute_cams(model, torch.randn(2, 1, 2, 2), [0, 1], layer=None).any()


@pytest.mark.parametrize("method", sorted(CAM_METHODS))
@pytest.mark.parametrize("training", [True, False])
def test_model_state_restored(method: str, training: bool) -> None:
    torch.manual_seed(0)
    model = build(_spec((4, 8), (True, False), 16))
    model.train(training)
    model.head.requires_grad_(False)             # a frozen part keeps requires_grad=False
    if training:
        model.stages[0].eval()                   # a mixed train/eval state survives too
    modes = [m.training for m in model.modules()]
    flags = [p.requires_grad for p in model.parameters()]
    children = [list(m.children()) for m in model.modules()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for p in model.parameters():
        p.grad = torch.ones_like(p)              # stale gradients are cleared too
    cams = compute_cams(model, torch.randn(3, 1, 16, 16), [0, 1, 2], method, layer=model.stages[1])
    assert cams.shape == (3, 16, 16) and np.isfinite(cams).all() and cams.max() <= 1 + 1e-6
    assert [m.training for m in model.modules()] == modes
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    assert [list(m.children()) for m in model.modules()] == children   # AblationCAM swapped its layer back
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())  # BatchNorm stats untouched
    assert not _hooks(model), _hooks(model)


def test_unknown_method_is_a_user_error() -> None:
    model = build(_spec((4,), (True,), 8))
    with pytest.raises(UserError, match="Did you mean 'gradcam'"):
        compute_cams(model, torch.randn(1, 1, 8, 8), [0], "gradcma", layer=model.stages[0])


# ---- cam_quality's parts (issue 15): the benchmark's checks, in small ----------------------------------------

def _quality(model, images, layer, cams=None, **kwargs) -> float:
    """cam_quality of ``model`` on ``images``: evaluate_cams, or the same score of the given ``cams``."""
    from nas_med.objectives.cam import CAM_PERCENTILES
    from nas_med.objectives.road import road_drops

    if cams is None:
        return evaluate_cams(model, images, layer=layer, **kwargs).cam_quality
    with torch.no_grad():
        targets = model(images).argmax(1).tolist()
    drops = road_drops(model, images, cams, targets, CAM_PERCENTILES, generator=torch.Generator().manual_seed(0),
                       lerf=False)
    return float(-drops.mean())


def _soft(masks: np.ndarray) -> np.ndarray:
    """Ground-truth lesion masks as a graded map (blurred; a binary map ties at the ROAD thresholds)."""
    x = torch.from_numpy(masks.astype(np.float32))[:, None]
    blur = torch.nn.functional.avg_pool2d(x, 5, 1, 2)
    ramp = torch.rand(x.shape, generator=torch.Generator().manual_seed(0)) * 1e-3
    return (x + blur + ramp)[:, 0].numpy() / 2.001


def test_a_perfect_cam_scores_above_an_inverted_one(trained) -> None:
    model, images, masks, _, layer = trained
    perfect = _soft(masks)
    assert _quality(model, images, layer, perfect) > _quality(model, images, layer, 1 - perfect) + 0.05


def test_the_grad_cam_scores_above_a_random_map(trained) -> None:
    model, images, _, targets, layer = trained
    cams = compute_cams(model, images, targets, layer=layer)
    rand = np.random.default_rng(0).random(cams.shape, dtype=np.float32)
    assert _quality(model, images, layer, cams) > _quality(model, images, layer, rand) + 0.02


def test_a_randomised_weights_copy_scores_lower(trained) -> None:
    """Adebayo et al.'s model-randomisation check: the same architecture with fresh weights scores lower."""
    model, images, _, _, layer = trained
    spec = _spec((16, 32, 64), (True, True, False), 32)
    torch.manual_seed(1)
    random = build(spec).eval()
    assert _quality(model, images, layer) > _quality(random, images, cam_target_layer(random, spec)) + 0.02


def test_the_score_repeats(trained) -> None:
    model, images, _, _, layer = trained
    first = _quality(model, images, layer)
    assert _quality(model, images, layer) == first                            # seeded: bit-identical
    other = _quality(model, images, layer, noise_seed=1)                       # other imputation noise
    assert other == pytest.approx(first, abs=0.03)
