"""Grad-CAM of a trained candidate and its quality: ROADCombined (fast imputer) and, where the dataset has
lesion masks, the share of CAM energy inside the mask."""
from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from pytorch_grad_cam import AblationCAM, GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from ..errors import look_up
from .road import road_combined

__all__ = ["CAM_METHODS", "CamResult", "compute_cams", "evaluate_cams", "mask_energy", "preserved_state",
           "target_layer"]

log = logging.getLogger(__name__)

CAM_METHODS = {"gradcam": GradCAM, "ablationcam": AblationCAM, "gradcam++": GradCAMPlusPlus,
               "hirescam": HiResCAM, "layercam": LayerCAM}


@contextlib.contextmanager
def preserved_state(model: nn.Module) -> Iterator[None]:
    """Restore, on exit, every sub-module's train/eval flag, its children (AblationCAM swaps a layer in and out)
    and every parameter's ``requires_grad``; parameter gradients are cleared (``.grad = None``)."""
    modes = [(m, m.training) for m in model.modules()]
    children = [(m, dict(m._modules)) for m in model.modules()]
    grad_flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        yield
    finally:
        for m, kids in children:
            if dict(m._modules) != kids:
                m._modules.clear()
                m._modules.update(kids)
        for m, mode in modes:
            m.training = mode
        for p, flag in grad_flags:
            p.requires_grad_(flag)
            p.grad = None


def target_layer(model: nn.Module, in_channels: int, size: int) -> nn.Module | None:
    """The module producing the deepest feature map of at least 2x2 (a 1x1 map gives an all-zero CAM).

    Found by running one input through the model and keeping the last module to finish with a 4-D output
    whose height and width are both >= 2; None when no such module exists.
    """
    shapes: list[tuple[nn.Module, tuple]] = []

    def record(module: nn.Module, _inputs, out) -> None:
        if isinstance(out, torch.Tensor):
            shapes.append((module, tuple(out.shape)))

    device = next(model.parameters()).device
    with preserved_state(model):
        hooks = [m.register_forward_hook(record) for m in model.modules() if m is not model]
        try:
            model.eval()
            with torch.no_grad():
                model(torch.zeros(1, in_channels, size, size, device=device))
        finally:
            for h in hooks:
                h.remove()
    deep = [m for m, shape in shapes if len(shape) == 4 and min(shape[-2:]) >= 2]
    return deep[-1] if deep else None


def compute_cams(model: nn.Module, images: torch.Tensor, targets: list[int], method: str = "gradcam",
                 layer: nn.Module | None = None) -> np.ndarray:
    """(B, H, W) CAMs in [0, 1] of class ``targets[i]`` for normalised float ``images`` (B, C, H, W).

    ``layer`` defaults to :func:`target_layer`. The model's modes, layers and ``requires_grad`` flags are
    restored afterwards, its gradients cleared, and no hook is left on it.
    """
    cam_class = CAM_METHODS[look_up(method, CAM_METHODS, "CAM method")]
    if len(targets) != images.shape[0]:
        raise ValueError(f"need one target per image: {len(targets)} targets for {images.shape[0]} images")
    if layer is None:
        layer = target_layer(model, images.shape[1], images.shape[-1])
    if layer is None:
        log.warning("no feature map of at least 2x2 in the model: CAMs are all zero")
        return np.zeros((images.shape[0], *images.shape[-2:]), dtype=np.float32)
    with preserved_state(model):
        cam = cam_class(model=model, target_layers=[layer])
        try:
            # AblationCAM draws tqdm bars on stderr for every image; the console belongs to the CLI
            quiet = contextlib.redirect_stderr(io.StringIO()) if method == "ablationcam" else contextlib.nullcontext()
            with quiet:
                out = cam(input_tensor=images, targets=[ClassifierOutputTarget(int(t)) for t in targets])
        finally:
            # not ``with cam``: grad-cam's __exit__ swallows IndexError
            cam.activations_and_grads.release()
    return np.nan_to_num(np.asarray(out, dtype=np.float32))


def mask_energy(cams: np.ndarray, masks: np.ndarray) -> float:
    """Mean over images with a non-empty mask and a non-zero CAM of (CAM energy inside the mask) / (total
    CAM energy); 1 means all of the map lies on the lesion, the mask's area share is what a flat map gets.
    NaN when no image qualifies."""
    if cams.shape != masks.shape:
        raise ValueError(f"cams {cams.shape} and masks {masks.shape} differ in shape")
    scores = []
    for cam, mask in zip(cams, masks.astype(bool)):
        total = float(cam.sum())
        if mask.any() and total > 0:
            scores.append(float(cam[mask].sum()) / total)
    return float(np.mean(scores)) if scores else float("nan")


@dataclass
class CamResult:
    """Per-trial explanation figures, plus the CAMs themselves for artifacts."""

    cam_quality: float
    road_per_image: np.ndarray
    mask_energy: float
    cams: np.ndarray
    targets: list[int]


def evaluate_cams(model: nn.Module, images: torch.Tensor, masks: torch.Tensor | None = None,
                  method: str = "gradcam", layer: nn.Module | None = None) -> CamResult:
    """CAMs of the predicted class for normalised ``images`` and their ROADCombined quality (higher is better:
    about +0.5 for a faithful map, 0 for a random one, below 0 for an inverted one); with ``masks`` (N, H, W)
    also the localization score :func:`mask_energy`. ``layer`` defaults to :func:`target_layer`."""
    with preserved_state(model), torch.no_grad():
        model.eval()
        targets = model(images).argmax(1).tolist()
    cams = compute_cams(model, images, targets, method, layer)
    # the same imputation noise for every trial: scores differ by the model and its CAMs, not by the draw
    noise = torch.Generator().manual_seed(0)
    road = road_combined(model, images, cams, targets=targets, generator=noise).detach().cpu().numpy()
    energy = mask_energy(cams, masks.cpu().numpy()) if masks is not None else float("nan")
    return CamResult(float(np.mean(road)), road, energy, cams, targets)
