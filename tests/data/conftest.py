"""Fixtures for the data tests: an isolated cache, the shared BreastMNIST files, tiny image trees."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch) -> Path:
    """Every test gets its own cache root (never the user's ~/.cache)."""
    root = tmp_path / "nas-med-cache"
    monkeypatch.setenv("NAS_MED_CACHE", str(root))
    return root


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny tensors: one intra-op thread avoids OpenMP oversubscription on a busy 2-core machine (25x slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def breast_dir(breastmnist_root) -> Path:
    """The real BreastMNIST files of ../shared (tests/conftest.py skips, or fails in CI, when absent)."""
    return breastmnist_root


def write_image(path: Path, ident: int, size: tuple[int, int] = (12, 12), mode: str = "L",
                seed: int | None = None) -> Path:
    """A small image whose pixel (0, 0) holds ``ident % 256`` and (0, 1) ``ident // 256`` (to identify it later)."""
    rng = np.random.default_rng(ident if seed is None else seed)
    shape = (size[1], size[0]) + ((3,) if mode == "RGB" else ())
    pixels = rng.integers(0, 256, shape, dtype=np.uint8)
    pixels[0, 0], pixels[0, 1] = ident % 256, ident // 256
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, mode).save(path)
    return path


def ident_of(images) -> list[int]:
    """The identities written by ``write_image`` (lossless files, no resizing), one per image."""
    return [int(a) + 256 * int(b) for a, b in zip(images[:, 0, 0, 0].tolist(), images[:, 0, 0, 1].tolist())]


@pytest.fixture
def count_opens(monkeypatch):
    """Counts calls of PIL.Image.open; returns a one-item list holding the count."""
    count = [0]
    real = Image.open

    def counting(*args, **kwargs):
        count[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(Image, "open", counting)
    return count


@pytest.fixture
def make_image():
    """The ``write_image`` helper."""
    return write_image


@pytest.fixture
def ident():
    """The ``ident_of`` helper."""
    return ident_of


def build_msk_tree(root: Path, per_pathology: int = 20, anatomies=("af", "hip", "knee", "shoulder", "spine"),
                   extra: bool = True) -> Path:
    """A miniature RadImageNet: ``radiology_ai/MR/<anatomy>/<2 pathologies>/*.png`` (+ ignored brain, CT, US)."""
    ident = 0
    for anatomy in anatomies:
        for pathology in ("normal", "soft_tissue_fluid"):
            for _ in range(per_pathology):
                write_image(root / "radiology_ai" / "MR" / anatomy / pathology / f"{anatomy}{ident:06d}.png", ident,
                            size=(8, 8))
                ident += 1
    if extra:
        for k in range(6):
            write_image(root / "radiology_ai" / "MR" / "brain" / "normal" / f"brain{k}.png", 1000 + k, size=(8, 8))
            write_image(root / "radiology_ai" / "CT" / "lung" / "nodule" / f"lung{k}.png", 2000 + k, size=(8, 8))
            write_image(root / "radiology_ai" / "US" / "thyroid" / f"us{k}.png", 3000 + k, size=(8, 8))
    return root


@pytest.fixture
def msk_tree(tmp_path) -> Path:
    """5 anatomies x 2 pathologies x 20 PNGs (200 images, 40 per class) plus ignored anatomies/modalities."""
    return build_msk_tree(tmp_path / "radimagenet")


@pytest.fixture
def msk_builder():
    """The ``build_msk_tree`` helper."""
    return build_msk_tree
