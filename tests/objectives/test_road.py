"""Tests for the fast batched ROAD imputer and metric (nas_med.objectives.road)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nas_med.objectives.road import impute, ranked_masks, road_combined, road_masks, solve_imputation

gc_road = pytest.importorskip("pytorch_grad_cam.metrics.road")

# grad-cam's reference imputer calls numpy functions on torch tensors
pytestmark = pytest.mark.filterwarnings("ignore:__array_wrap__:DeprecationWarning")


@pytest.fixture(autouse=True)
def _single_thread():
    """One intra-op thread: these small ops gain nothing from two, and on a
    busy 2-core machine OpenMP spin-waiting makes them 10x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _smooth_images(n: int, c: int, size: int | tuple[int, int], seed: int) -> torch.Tensor:
    hw = (size, size) if isinstance(size, int) else size
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(n, c, 5, 5, generator=g)
    img = F.interpolate(coarse, size=hw, mode="bilinear", align_corners=False)
    return img + 0.2 * torch.randn(n, c, *hw, generator=g)


def _blob_masks(n: int, size: int | tuple[int, int], frac: float, seed: int) -> torch.Tensor:
    hw = (size, size) if isinstance(size, int) else size
    g = torch.Generator().manual_seed(seed)
    cam = F.interpolate(torch.rand(n, 1, 4, 4, generator=g), size=hw,
                        mode="bilinear", align_corners=False)[:, 0]
    thr = torch.quantile(cam.reshape(n, -1), 1 - frac, dim=1)
    return cam >= thr[:, None, None]


def _reference_impute(img: torch.Tensor, remove: torch.Tensor) -> torch.Tensor:
    imp = gc_road.NoisyLinearImputer(noise=0.0)
    return torch.stack([imp(img[i], (~remove[i]).float()) for i in range(img.shape[0])])


def test_unremoved_pixels_unchanged() -> None:
    img = _smooth_images(3, 3, 33, seed=0)
    remove = _blob_masks(3, 33, 0.6, seed=1)
    out = impute(img, remove, noise=0.05)
    keep = ~remove.unsqueeze(1).expand_as(img)
    assert torch.equal(out[keep], img[keep])
    assert not torch.allclose(out[~keep], img[~keep])


def test_constant_image_imputes_constant() -> None:
    img = torch.full((2, 2, 40, 40), 0.7)
    img[1] = -1.3
    remove = _blob_masks(2, 40, 0.8, seed=2)
    out = impute(img, remove, noise=0.0)
    assert torch.allclose(out, img, atol=1e-4)  # CG tol 1e-5 (default)


def test_linear_ramp_imputes_ramp() -> None:
    size = 48
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float32),
                            torch.arange(size, dtype=torch.float32), indexing="ij")
    ramp = (0.03 * xx - 0.02 * yy + 0.5)[None, None]
    remove = torch.zeros(1, size, size, dtype=torch.bool)
    remove[0, 8:40, 10:30] = True          # interior hole: ramp is the exact solution
    out = impute(ramp, remove, noise=0.0)
    assert (out - ramp).abs().max().item() < 2e-3
    # the zero image would be far off: the check above is not vacuous
    assert ramp[0, 0][remove[0]].abs().mean() > 0.1


@pytest.mark.parametrize("hw", [(40, 40), (37, 30)])
def test_matches_reference_solution(hw: tuple[int, int]) -> None:
    img = _smooth_images(3, 2, hw, seed=3)
    remove = _blob_masks(3, hw, 0.8, seed=4)
    remove[2, :, :20] = True                 # one hole touching the border
    remove[1] |= torch.rand(hw, generator=torch.Generator().manual_seed(5)) < 0.3
    ref = _reference_impute(img, remove)
    out, iters, rel = solve_imputation(img, remove, tol=1e-6, max_iter=500)
    assert rel < 1e-6 and iters < 60
    assert (out - ref).abs().max().item() < 1e-4
    # default settings and noise: close to the reference plus noise of std 0.01
    noisy = impute(img, remove, noise=0.01)
    diff = (noisy - ref)[remove.unsqueeze(1).expand_as(img)]
    assert diff.std().item() == pytest.approx(0.01, rel=0.1)
    assert diff.mean().abs().item() < 1e-3


def test_no_pixel_or_all_pixels_removed() -> None:
    img = _smooth_images(2, 1, 16, seed=7)
    remove = torch.zeros(2, 16, 16, dtype=torch.bool)
    remove[1] = True
    out = impute(img, remove, noise=0.0)
    assert torch.equal(out[0], img[0])
    assert torch.isfinite(out).all() and torch.equal(out[1], torch.zeros_like(out[1]))


def test_batch_independence() -> None:
    img = _smooth_images(5, 1, 36, seed=5)
    remove = torch.stack([_blob_masks(1, 36, f, seed=6 + i)[0]
                          for i, f in enumerate((0.2, 0.5, 0.8, 0.95, 0.4))])
    batch = impute(img, remove, noise=0.0, tol=1e-7, max_iter=500)
    for i in range(5):
        single = impute(img[i:i + 1], remove[i:i + 1], noise=0.0, tol=1e-7, max_iter=500)
        assert torch.allclose(batch[i:i + 1], single, atol=1e-5)


def test_masks_match_grad_cam() -> None:
    rng = np.random.default_rng(0)
    cams = rng.random((2, 20, 20)).astype(np.float32)
    cams[1, :10] = 0.0                       # ties, as ReLU'd Grad-CAMs have
    seen = []

    def capture(img, mask):
        seen.append(mask.numpy() == 0)       # reference imputes where mask == 0
        return img

    morf, lerf = road_masks(cams, (20, 70))
    for i in range(2):
        for j, p in enumerate((20, 70)):
            seen.clear()
            gc_road.RemoveMostRelevantFirst(p, capture)(torch.zeros(1, 20, 20),
                                                       torch.from_numpy(cams[i]))
            gc_road.RemoveLeastRelevantFirst(p, capture)(torch.zeros(1, 20, 20),
                                                        torch.from_numpy(cams[i]))
            assert np.array_equal(morf[i, j].numpy(), seen[0])
            assert np.array_equal(lerf[i, j].numpy(), seen[1])
    assert morf[0, 0].float().mean() == pytest.approx(0.8, abs=0.01)  # p=20 removes 80 %


def test_ranked_masks_remove_exactly_the_share_and_break_ties_at_random() -> None:
    rng = np.random.default_rng(0)
    cams = rng.random((3, 20, 20)).astype(np.float32)
    cams[1] = 0.0                            # an all-zero CAM: grad-cam's >= threshold removes every pixel
    cams[2, :, :19] = 0.0                    # zero on 95 % of the image
    morf, lerf = ranked_masks(cams, (95, 98), np.random.default_rng(1))
    assert morf.shape == lerf.shape == (3, 2, 20, 20)
    assert morf.sum(dim=(2, 3)).tolist() == [[20, 8]] * 3     # 5 % and 2 % of 400 pixels
    assert lerf.sum(dim=(2, 3)).tolist() == [[20, 8]] * 3
    top = np.argsort(-cams[0].ravel())[:20]
    assert set(np.flatnonzero(morf[0, 0].numpy().ravel())) == set(top)
    assert morf[2, 0].numpy()[:, 19].all()   # the only non-zero column is the most relevant 5 %
    assert not (morf[0] & lerf[0]).any()
    again, _ = ranked_masks(cams, (95, 98), np.random.default_rng(1))
    other, _ = ranked_masks(cams, (95, 98), np.random.default_rng(2))
    assert torch.equal(morf, again) and not torch.equal(morf[1], other[1])   # seeded; ties drawn
    gc_morf, _ = road_masks(cams, (95, 98))
    assert gc_morf[1].all()                  # what the ranked masks avoid


class _TinyCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.max_pool2d(F.relu(self.bn(self.conv1(x))), 2)
        return self.fc(F.relu(self.conv2(h)).amax(dim=(2, 3)))


@pytest.mark.parametrize("size", [28, 64])
def test_road_fast_agrees_with_reference(size: int) -> None:
    torch.manual_seed(0)
    model = _TinyCNN()
    with torch.no_grad():
        model.fc.weight.mul_(20.0)           # make the softmax sensitive
    model.train()
    x = _smooth_images(8, 1, size, seed=10 + size)
    g = torch.Generator().manual_seed(size)
    cams = F.interpolate(torch.rand(8, 1, 5, 5, generator=g), size=(size, size),
                         mode="bilinear", align_corners=False)[:, 0].numpy()
    fast = road_combined(model, x, cams, imputer="fast")
    ref = road_combined(model, x, cams, imputer="reference")
    assert model.training and model.bn.training      # mode restored
    assert fast.shape == ref.shape == (8,)
    assert torch.isfinite(fast).all() and torch.isfinite(ref).all()
    assert (fast - ref).abs().mean().item() <= 0.02
    # the scores are not trivially zero, so the agreement is meaningful
    assert ref.abs().mean().item() > 0.01
    # an inverted CAM flips the combined score
    inv = road_combined(model, x, 1 - cams, imputer="fast")
    assert (inv + fast).abs().mean().item() < 0.02


def test_road_explicit_targets_and_validation() -> None:
    model = _TinyCNN().eval()
    x = _smooth_images(4, 1, 28, seed=20)
    cams = torch.rand(4, 28, 28)
    s = road_combined(model, x, cams, targets=[0, 1, 2, 0], percentiles=(50,))
    assert s.shape == (4,) and torch.isfinite(s).all()
    assert not model.training
    with pytest.raises(ValueError):
        road_combined(model, x, cams[:, :10], imputer="fast")
    with pytest.raises(ValueError):
        road_combined(model, x, cams, imputer="nope")
