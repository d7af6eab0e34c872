"""Grad-CAM of a trained candidate and its quality: ROADCombined (fast imputer) and, where the dataset has
lesion masks, the share of CAM energy inside the mask."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from pytorch_grad_cam import AblationCAM, GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from ..errors import look_up
from .road import road_combined

CAM_METHODS = {"gradcam": GradCAM, "ablationcam": AblationCAM, "gradcam++": GradCAMPlusPlus,
               "hirescam": HiResCAM, "layercam": LayerCAM}


def target_layer(model: nn.Module, in_channels: int, size: int) -> nn.Module | None:
    """The module producing the deepest feature map of at least 2x2 (a 1x1 map gives an all-zero CAM).

    Found by running one input through the model and keeping the last module to finish with a 4-D output
    whose height and width are both >= 2; None when no such module exists.
    """
    shapes: list[tuple[nn.Module, tuple]] = []
    hooks = [m.register_forward_hook(lambda mod, _, out: shapes.append((mod, tuple(out.shape)))
                                     if isinstance(out, torch.Tensor) else None)
             for m in model.modules() if m is not model]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, in_channels, size, size, device=device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    deep = [m for m, shape in shapes if len(shape) == 4 and min(shape[-2:]) >= 2]
    return deep[-1] if deep else None


def compute_cams(model: nn.Module, images: torch.Tensor, targets: list[int], method: str = "gradcam",
                 layer: nn.Module | None = None) -> np.ndarray:
    """(B, H, W) CAMs in [0, 1] for normalised float images; the model's mode, grads and hooks are restored."""
    cam_class = CAM_METHODS[look_up(method, CAM_METHODS, "CAM method")]
    if layer is None:
        layer = target_layer(model, images.shape[1], images.shape[-1])
    if layer is None:
        return np.zeros((images.shape[0], *images.shape[-2:]), dtype=np.float32)
    was_training = model.training
    grad_flags = [p.requires_grad for p in model.parameters()]
    try:
        with cam_class(model=model, target_layers=[layer]) as cam:
            out = cam(input_tensor=images, targets=[ClassifierOutputTarget(t) for t in targets])
    finally:
        model.train(was_training)
        for p, flag in zip(model.parameters(), grad_flags):
            p.requires_grad_(flag)
            p.grad = None
    return np.nan_to_num(np.asarray(out, dtype=np.float32))


def mask_energy(cams: np.ndarray, masks: np.ndarray) -> float:
    """Mean over images with a non-empty mask of (CAM energy inside the mask) / (total CAM energy)."""
    scores = []
    for cam, mask in zip(cams, masks):
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
                  method: str = "gradcam") -> CamResult:
    """CAMs of the predicted class for normalised ``images`` and their ROADCombined quality (higher is better)."""
    with torch.no_grad():
        was_training = model.training
        model.eval()
        targets = model(images).argmax(1).tolist()
        model.train(was_training)
    cams = compute_cams(model, images, targets, method)
    road = road_combined(model, images, cams, targets=targets).detach().cpu().numpy()
    energy = mask_energy(cams, masks.cpu().numpy()) if masks is not None else float("nan")
    return CamResult(float(np.mean(road)), road, energy, cams, targets)
