"""Grad-CAM of a trained candidate and its quality: ROAD's MoRF term at lesion scale (fast imputer) and, where
the dataset has lesion masks, the share of CAM energy inside the mask."""
from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from pytorch_grad_cam import AblationCAM, GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from ..arch.cam_target import CAM_MIN_SIDE
from ..errors import look_up
from .road import road_drops

__all__ = ["CAM_IMAGES", "CAM_METHOD", "CAM_METHODS", "CAM_MIN_SIDE", "CAM_PERCENTILES", "CAM_QUALITY_NOTE",
           "CAM_ROAD", "CamResult", "compute_cams", "evaluate_cams", "mask_energy", "preserved_state"]

log = logging.getLogger(__name__)

# cam_quality's ingredients, chosen by measurement (benchmarks/cam_agreement.py; benchmarks/README.md has the
# comparison): Grad-CAM of the predicted class at the deepest map of at least 4x4 (a 2x2 map is a blob whatever
# the model learned: such models failed the randomisation check), on 64 validation images, scored by ROAD's MoRF
# term at lesion scale: the drop of the class probability when exactly the CAM's top 5 % and 2 % of pixels are
# imputed away (grad-cam percentiles 95 and 98; ties broken at random, not grad-cam's ``>=`` threshold, which
# removes the whole image for an all-zero CAM). ROADCombined at 20-80 % (removing 80-20 % of the image) ranked
# models almost at random against the lesion masks; the LeRF term added noise and cost.
CAM_METHOD = "gradcam"
CAM_IMAGES = 64
CAM_PERCENTILES = (95, 98)  # search.config.CAM_SCORE names them: change both together
CAM_ROAD = "morf"  # or "combined": ROADCombined, (mean LeRF - mean MoRF) / 2, the score before issue 15

# the model card's sentence: what cam_quality measures and how far it can be trusted (benchmarks/cam_agreement.py,
# full run 2026-12-01; update with the figures when the score changes)
CAM_QUALITY_NOTE = (
    "CAM quality measures, without ground truth, how much the predicted class's probability drops when the 2 % "
    "and 5 % of pixels the Grad-CAM marks most are imputed away (ROAD MoRF, higher is better, ~0 for an "
    "uninformative map); on nas-med's synthetic data with known lesions it ranked 40 trained candidates of two "
    "studies like the lesion-mask score with Spearman rho 0.66 and 0.67, repeated on other images with rho 0.98, "
    "and put 37 of the 40 above a copy with randomised weights (benchmarks/cam_agreement.py), so read it as a "
    "ranking between candidates, not as proof that an explanation is right.")

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


def compute_cams(model: nn.Module, images: torch.Tensor, targets: list[int], method: str = "gradcam", *,
                 layer: nn.Module | None) -> np.ndarray:
    """(B, H, W) CAMs in [0, 1] of class ``targets[i]`` for normalised float ``images`` (B, C, H, W).

    ``layer`` is the module Grad-CAM reads: :func:`nas_med.arch.cam_target_layer` (the one place that picks it,
    for the search, the export and predict alike); None (no usable map) gives all-zero CAMs. The model's modes,
    layers and ``requires_grad`` flags are restored afterwards, its gradients cleared, and no hook is left on it.
    """
    cam_class = CAM_METHODS[look_up(method, CAM_METHODS, "CAM method")]
    if len(targets) != images.shape[0]:
        raise ValueError(f"need one target per image: {len(targets)} targets for {images.shape[0]} images")
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
    """Mean over images with a non-empty mask of (CAM energy inside the mask) / (total CAM energy); 1 means all
    of the map lies on the lesion. An all-zero CAM counts as a flat map: the mask's area share (skipping it made
    a model whose CAMs are mostly zero look as good as its few non-zero maps). NaN when no image has a lesion."""
    if cams.shape != masks.shape:
        raise ValueError(f"cams {cams.shape} and masks {masks.shape} differ in shape")
    scores = []
    for cam, mask in zip(cams, masks.astype(bool), strict=True):
        if mask.any():
            total = float(cam.sum())
            scores.append(float(cam[mask].sum()) / total if total > 0 else float(mask.mean()))
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
                  method: str = CAM_METHOD, layer: nn.Module | None = None, *,
                  percentiles: Sequence[float] = CAM_PERCENTILES, road: str = CAM_ROAD,
                  noise_seed: int = 0) -> CamResult:
    """CAMs of the predicted class for normalised ``images`` and their quality ``cam_quality`` (higher is
    better); with ``masks`` (N, H, W) also the localization score :func:`mask_energy`.

    ``road="morf"``: minus the mean change of the class probability when the CAM's most relevant pixels are
    imputed away, over ``percentiles`` (grad-cam's: ``p`` removes ``100 - p`` % of the pixels); ~0 for an
    uninformative map. ``road="combined"``: ROADCombined, ``(mean LeRF - mean MoRF) / 2``.
    ``layer``: from :func:`nas_med.arch.cam_target_layer`; None gives all-zero CAMs (scored as a flat map).
    ``noise_seed`` seeds the imputation noise: the same for every trial, so scores differ by the model and its
    CAMs, not by the draw.
    """
    if road not in ("morf", "combined"):
        raise ValueError(f"road must be 'morf' or 'combined', got {road!r}")
    with preserved_state(model), torch.no_grad():
        model.eval()
        targets = model(images).argmax(1).tolist()
    cams = compute_cams(model, images, targets, method, layer=layer)
    noise = torch.Generator().manual_seed(noise_seed)
    # the MoRF score removes exactly 5 % and 2 % (ties at random); the old combined score kept grad-cam's thresholds
    drops = road_drops(model, images, cams, targets, tuple(percentiles), generator=noise,
                       lerf=road == "combined", ties="random" if road == "morf" else "gradcam").mean(dim=2)
    per_image = (-drops[:, 0] if road == "morf" else (drops[:, 1] - drops[:, 0]) / 2).numpy()
    energy = mask_energy(cams, masks.cpu().numpy()) if masks is not None else float("nan")
    return CamResult(float(np.mean(per_image)), per_image, energy, cams, targets)
