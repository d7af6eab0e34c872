"""The default size of a folder dataset: median shorter side, capped per device, a multiple of 16, never most
images enlarged; measured on constructed folders of mixed, tiny and huge images."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from nas_med.data.sizing import default_size, folder_default_size


def _folder(root, shapes, mode="L", fmt="png"):
    """Two classes, the (width, height) ``shapes`` dealt out alternately; flat images (headers are what counts)."""
    for i, (w, h) in enumerate(shapes):
        path = root / ("a" if i % 2 else "b") / f"{i:03d}.{fmt}"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new(mode, (w, h), color=i % 200).save(path)
    return root


def test_mixed_sizes_are_capped_by_the_device_budget(tmp_path):
    rng = np.random.default_rng(0)
    shapes = [tuple(int(v) for v in rng.integers(250, 625, 2)) for _ in range(40)]  # the 250-624 px
    root = _folder(tmp_path / "mixed", shapes, mode="RGB", fmt="jpg")
    cpu = folder_default_size(f"folder:{root}", "cpu")
    assert cpu.size == 128 and cpu.upsampled == 0 and cpu.total == 40
    assert "128 px" in cpu.reason and "CPU budget of 128 px" in cpu.reason and "--size" in cpu.reason
    gpu = default_size(shapes, "cuda")
    assert gpu.size == 224 and gpu.upsampled == 0


def test_median_below_the_budget_is_rounded_down_to_16_and_enlarges_under_half():
    shapes = [(90, 120)] * 5 + [(100, 100)] * 6 + [(70, 300)] * 4  # shorter sides 90, 100, 70: median 90
    choice = default_size(shapes, "cpu")
    assert choice.size == 80 and choice.size % 16 == 0 and choice.median_side == 90
    assert choice.upsampled == 4 and choice.upsampled < choice.total / 2  # only the 70 px images
    assert "rounded down to a multiple of 16" in choice.reason


@pytest.mark.parametrize("side, expect", [(12, 12), (28, 28), (5, 8)])
def test_tiny_images_keep_their_own_size(side, expect):
    choice = default_size([(side, side)] * 10, "cpu")
    assert choice.size == expect and "kept" in choice.reason


def test_huge_images_are_brought_to_the_budget(tmp_path):
    root = _folder(tmp_path / "huge", [(3000, 2400), (2048, 2048), (4000, 3000), (2500, 2600)])
    choice = folder_default_size(f"folder:{root}", "cpu")
    assert choice.size == 128 and choice.median_side == 2400 and choice.upsampled == 0
    assert default_size([(3000, 2400)] * 3, "mps").size == 224


def test_other_datasets_have_no_folder_default():
    assert folder_default_size("synthetic") is None and folder_default_size("breastmnist") is None
