"""Per-sample augmentation of uint8 image batches already on the training device (no file decoding).

A named policy (``none``, ``light``, ``medium``, ``strong``) sets the ranges of a random affine (rotation, scale:
a random resized crop's zoom, shift), horizontal flips (switchable off where laterality matters), brightness,
contrast and gamma jitter and optional Gaussian noise. Every sample draws its own parameters from a seeded
``torch.Generator`` (on the CPU, so the same seed gives the same draws on every device); masks, when given, get
the same geometric transform as their image (nearest neighbour), labels are never touched. Training only:
``train`` never calls it for validation, test or export. ``auto`` is a final recipe's word for "whichever of
``none`` and ``light`` has the lower validation loss for this model" (``nas_med.final.settle``)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .errors import UserError

__all__ = ["AUTO", "AUTO_CHOICES", "POLICIES", "Policy", "augment_batch", "check_policy"]


@dataclass(frozen=True)
class Policy:
    """Ranges of one named policy (0 switches a transform off)."""

    rotate: float = 0.0      # degrees, +-
    scale: float = 0.0       # relative zoom, +- (1 +- scale)
    shift: float = 0.0       # share of the image side, +-
    flip: float = 0.0        # probability of a horizontal flip
    brightness: float = 0.0  # added, +- (images in [0, 1])
    contrast: float = 0.0    # relative, +-
    gamma: float = 0.0       # log-uniform in [1 / (1 + gamma), 1 + gamma]
    noise: float = 0.0       # std of Gaussian noise (images in [0, 1])

    @property
    def geometric(self) -> bool:
        return bool(self.rotate or self.scale or self.shift or self.flip)


POLICIES: dict[str, Policy] = {
    "none": Policy(),
    "light": Policy(rotate=10, scale=0.1, shift=0.05, flip=0.5, brightness=0.05, contrast=0.1),
    "medium": Policy(rotate=15, scale=0.15, shift=0.1, flip=0.5, brightness=0.1, contrast=0.2, gamma=0.2),
    "strong": Policy(rotate=25, scale=0.25, shift=0.12, flip=0.5, brightness=0.15, contrast=0.3, gamma=0.4,
                     noise=0.03),
}


AUTO = "auto"  # a final recipe's "choose on validation" (nas_med.final.settle): one of AUTO_CHOICES per model
AUTO_CHOICES = ("none", "light")


def check_policy(name: str, auto: bool = True) -> str:
    """``name`` if it is a policy (or, with ``auto``, ``auto``), else UserError naming the valid ones."""
    if name == AUTO and not auto:
        raise UserError(f"augmentation '{AUTO}' is a final recipe's choice on validation (nas_med.final.settle); one "
                        f"training run needs one policy ({', '.join(POLICIES)}).")
    if name != AUTO and name not in POLICIES:
        raise UserError(f"unknown augmentation policy '{name}' (valid: {', '.join([*POLICIES, AUTO])}).")
    return name


def _uniform(gen: torch.Generator, n: int, half: float) -> torch.Tensor:
    return (torch.rand(n, generator=gen) * 2 - 1) * half


def augment_batch(images: torch.Tensor, policy: str | Policy, gen: torch.Generator, *, flips: bool = True,
                  masks: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``images`` (B, C, H, W) uint8 -> float in [0, 255] (``Normalizer`` takes either), each sample with its own
    draws from ``gen``; ``masks`` (B, H, W) follow the same geometry. Policy ``none`` returns the input."""
    p = POLICIES[check_policy(policy)] if isinstance(policy, str) else policy
    if p == POLICIES["none"]:
        return images, masks
    b, device = images.shape[0], images.device
    x = images.float() / 255
    if p.geometric:
        angle = _uniform(gen, b, math.radians(p.rotate))
        zoom = 1 + _uniform(gen, b, p.scale)
        tx, ty = _uniform(gen, b, 2 * p.shift), _uniform(gen, b, 2 * p.shift)
        sign = torch.where(torch.rand(b, generator=gen) < (p.flip if flips else 0.0), -1.0, 1.0)
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        theta = torch.stack([torch.stack([cos * sign, -sin, tx], 1), torch.stack([sin * sign, cos, ty], 1)], 1)
        theta = theta.to(device)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        if masks is not None:
            m = F.grid_sample(masks[:, None].float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
            masks = m[:, 0] > 0.5
    view = (b, 1, 1, 1)
    if p.gamma:
        g = torch.exp(_uniform(gen, b, math.log1p(p.gamma))).to(device).view(view)
        x = x.clamp(min=0).pow(g)
    if p.contrast:
        c = (1 + _uniform(gen, b, p.contrast)).to(device).view(view)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * c + mean
    if p.brightness:
        x = x + _uniform(gen, b, p.brightness).to(device).view(view)
    if p.noise:
        x = x + torch.randn(x.shape, generator=gen).to(device) * p.noise
    return x.clamp(0, 1) * 255, masks
