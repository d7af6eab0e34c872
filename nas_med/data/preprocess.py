"""Resize to a fixed size and convert to a fixed channel count, on uint8 tensors; their per-channel statistics."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import UserError
from .types import Dataset, Split


def resize_images(images: torch.Tensor, size: int, chunk: int = 2048) -> torch.Tensor:
    """(N, C, H, W) uint8 -> (N, C, size, size) uint8, antialiased bilinear; unchanged if already that size."""
    if images.shape[-2:] == (size, size):
        return images
    out = []
    for start in range(0, images.shape[0], chunk):
        x = images[start:start + chunk].float()
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out.append(x.round().clamp(0, 255).to(torch.uint8))
    return torch.cat(out) if out else images.new_zeros((0, images.shape[1], size, size))


def convert_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """1 -> 3 channels by repetition, 3 -> 1 by luminance."""
    have = images.shape[1]
    if have == channels:
        return images
    if have == 1 and channels == 3:
        return images.expand(-1, 3, -1, -1).contiguous()
    if have == 3 and channels == 1:
        weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        return (images.float() * weights).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
    raise UserError(f"cannot convert {have}-channel images to {channels} channels (1 or 3 are supported).")


def _prepare_split(split: Split, size: int | None, channels: int | None) -> Split:
    images = split.images
    if channels is not None:
        images = convert_channels(images, channels)
    masks = split.masks
    if size is not None:
        images = resize_images(images, size)
        if masks is not None and masks.shape[-1] != size:
            masks = F.interpolate(masks[:, None].float(), size=(size, size), mode="nearest")[:, 0] > 0.5
    return Split(images, split.labels, masks, split.groups)


def check_size_channels(size: int | None, channels: int | None) -> None:
    """Raise UserError unless ``size`` is None or 8..1024 and ``channels`` is None, 1 or 3."""
    if size is not None and not 8 <= size <= 1024:
        raise UserError(f"--size must be between 8 and 1024 pixels, got {size}.")
    if channels not in (None, 1, 3):
        raise UserError(f"--channels must be 1 or 3, got {channels}.")


def prepare(dataset: Dataset, size: int | None = None, channels: int | None = None) -> Dataset:
    """The dataset at ``size`` px with ``channels`` channels (None keeps what the source has)."""
    check_size_channels(size, channels)
    splits = {name: _prepare_split(s, size, channels) for name, s in dataset.splits.items()}
    return dataset.with_splits(**splits)


def channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and (sample) std of uint8 ``images`` (B, C, H, W) on the [0, 1] scale, from exact
    256-bin counts: a float reduction over the images would depend on the thread count, and so would every
    figure normalised with it."""
    x = images.transpose(0, 1).reshape(images.shape[1], -1)
    values = torch.arange(256, dtype=torch.float64) / 255
    means, stds = [], []
    for channel in x:
        counts = torch.bincount(channel, minlength=256).to(torch.float64)
        n = float(counts.sum())
        mean = float((counts * values).sum() / n)
        var = float((counts * (values - mean) ** 2).sum() / max(n - 1, 1))
        means.append(float(torch.tensor(mean, dtype=torch.float32)))
        stds.append(float(torch.tensor(var ** 0.5, dtype=torch.float32)))
    return means, stds
