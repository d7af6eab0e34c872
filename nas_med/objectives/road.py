"""Fast batched ROAD (RemOve And Debias) metric.

A PyTorch re-implementation of grad-cam's ``ROADCombined`` metric (``pytorch_grad_cam/metrics/road.py``, after
Rong et al. 2022, https://arxiv.org/abs/2202.00449), with the batched imputer of ``_imputer.py``.

:func:`road_combined` reproduces grad-cam's semantics exactly, including its
masks: for percentile ``p`` MoRF removes the pixels with
``cam >= percentile(cam, p)`` and LeRF those with
``1 - cam >= percentile(1 - cam, p)``; so at ``p = 20`` about 80 % of the
pixels are removed, not 20 %.  The score is
``(mean_p LeRF_p - mean_p MoRF_p) / 2`` where each term is the change of the
softmax probability of the target class caused by the imputation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ._imputer import impute, solve_imputation

__all__ = ["impute", "ranked_masks", "road_combined", "road_drops", "road_masks", "solve_imputation"]


def road_masks(cams: Tensor | np.ndarray, percentiles: Sequence[float] = (20, 40, 60, 80)
               ) -> tuple[Tensor, Tensor]:
    """Removed-pixel masks exactly as grad-cam builds them.

    Returns ``(morf, lerf)``, two ``(B, P, H, W)`` bool tensors (CPU) that are
    True where grad-cam's ``RemoveMostRelevantFirst`` / ``RemoveLeastRelevantFirst``
    hand a pixel to the imputer: ``cam >= np.percentile(cam, p)`` and
    ``1 - cam >= np.percentile(1 - cam, p)`` (comparisons in the CAM's dtype).
    """
    cams_np = _as_numpy(cams)
    inv = 1 - cams_np
    q = np.asarray(percentiles, dtype=np.float64)
    # (P, B) thresholds, per image as np.percentile(cam_i, p), cast to the CAM's dtype as the reference compares
    t_m = np.percentile(cams_np, q, axis=(1, 2)).astype(cams_np.dtype)
    t_l = np.percentile(inv, q, axis=(1, 2)).astype(cams_np.dtype)
    morf = ~(cams_np[:, None] < t_m.T[:, :, None, None])
    lerf = ~(inv[:, None] < t_l.T[:, :, None, None])
    return torch.from_numpy(morf), torch.from_numpy(lerf)


def ranked_masks(cams: Tensor | np.ndarray, percentiles: Sequence[float], rng: np.random.Generator
                 ) -> tuple[Tensor, Tensor]:
    """Like :func:`road_masks`, but each mask removes exactly ``round((100 - p) % of H*W)`` pixels: the CAM's
    highest (MoRF) or lowest (LeRF), ties broken at random by ``rng``.

    grad-cam's ``cam >= percentile`` removes every pixel tied at the threshold: an all-zero CAM, or one that is
    zero on more than 95 % of the image, loses the whole image at ``p = 95`` and scores as if it were perfect.
    """
    cams_np = _as_numpy(cams)
    b, h, w = cams_np.shape
    flat = cams_np.reshape(b, h * w)
    order = np.lexsort((rng.random(flat.shape), -flat), axis=-1)  # most relevant first
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(h * w)[None].repeat(b, 0), axis=-1)
    counts = np.array([round((100 - p) / 100 * h * w) for p in percentiles])[None, :, None]
    morf = rank[:, None] < counts
    lerf = rank[:, None] >= h * w - counts
    return (torch.from_numpy(morf.reshape(b, len(percentiles), h, w)),
            torch.from_numpy(lerf.reshape(b, len(percentiles), h, w)))


def _as_numpy(cams: Tensor | np.ndarray) -> np.ndarray:
    if isinstance(cams, Tensor):
        cams = cams.detach().cpu().numpy()
    cams = np.ascontiguousarray(cams)
    if cams.ndim != 3:
        raise ValueError(f"cams must be (B, H, W), got shape {cams.shape}")
    return cams


def _softmax_at(logits: Tensor, targets: Tensor) -> Tensor:
    """``ClassifierOutputSoftmaxTarget``: softmax probability of each target (CPU)."""
    prob = torch.softmax(logits.float(), dim=-1)
    return prob.gather(1, targets[:, None].to(prob.device))[:, 0].cpu()


def _logits(model: nn.Module, x: Tensor, batch_size: int) -> Tensor:
    return torch.cat([model(x[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)])


def road_combined(model: nn.Module, images: Tensor, cams: Tensor | np.ndarray,
                  targets: Sequence[int] | None = None,
                  percentiles: Sequence[float] = (20, 40, 60, 80),
                  imputer: str = "fast", batch_size: int = 64,
                  generator: torch.Generator | None = None) -> Tensor:
    """Per-image ROADCombined score, as ``pytorch_grad_cam.metrics.road.ROADCombined``.

    Args:
        model: classifier returning ``(B, num_classes)`` logits.
        images: ``(B, C, H, W)`` input, already normalised for the model.
        cams: ``(B, H, W)`` attribution maps (grad-cam scales them to [0, 1]).
        targets: class per image; None uses the model's predicted class.
        percentiles: thresholds shared by MoRF and LeRF.
        imputer: ``"fast"`` (batched multigrid-CG solver) or ``"reference"``
            (grad-cam's own ``ROADCombined`` / ``NoisyLinearImputer``).
        batch_size: images per model call (and per reference call).
        generator: RNG for the imputation noise of the fast path.

    Returns:
        ``(B,)`` float32 CPU tensor ``(mean_p LeRF_p - mean_p MoRF_p) / 2``.
        The model runs in eval mode under ``torch.no_grad()``; the train/eval
        flag of every sub-module is restored afterwards.
    """
    if imputer not in ("fast", "reference"):
        raise ValueError(f"imputer must be 'fast' or 'reference', got {imputer!r}")
    cams_np = _as_numpy(cams)
    n = images.shape[0]
    if cams_np.shape != (n, *images.shape[2:]):
        raise ValueError(f"cams shape {cams_np.shape} does not match images {tuple(images.shape)}")
    tgt: Tensor | None = None
    if targets is not None:
        tgt = torch.as_tensor(list(targets), dtype=torch.long)
        if tgt.shape != (n,):
            raise ValueError("need one target per image")
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            if imputer == "reference":
                if tgt is None:
                    tgt = _logits(model, images, batch_size).argmax(-1).cpu()
                return _road_reference(model, images, cams_np, tgt, percentiles, batch_size)
            return _road_fast(model, images, cams_np, tgt, percentiles, batch_size, generator)
    finally:
        for m, mode in modes:
            m.training = mode


def _road_fast(model: nn.Module, images: Tensor, cams_np: np.ndarray, tgt: Tensor | None,
               percentiles: Sequence[float], batch_size: int,
               generator: torch.Generator | None) -> Tensor:
    diff = _drops(model, images, road_masks(cams_np, percentiles), tgt, percentiles, batch_size,
                  generator).mean(dim=2)
    return (diff[:, 1] - diff[:, 0]) / 2


def road_drops(model: nn.Module, images: Tensor, cams: Tensor | np.ndarray, targets: Sequence[int] | None = None,
               percentiles: Sequence[float] = (20, 40, 60, 80), batch_size: int = 64,
               generator: torch.Generator | None = None, lerf: bool = True, ties: str = "gradcam") -> Tensor:
    """Per-image, per-percentile changes of the target's softmax probability under the fast imputer.

    Returns a ``(B, 2, P)`` float32 CPU tensor: ``[:, 0]`` MoRF (most relevant pixels removed), ``[:, 1]``
    LeRF, for each of ``percentiles`` (grad-cam's thresholds: ``p`` removes about ``100 - p`` % of the pixels);
    ``(B, 1, P)``, MoRF only, with ``lerf=False`` (half the cost).
    ``ties="gradcam"``: :func:`road_masks` (grad-cam's thresholds); ``"random"``: :func:`ranked_masks`, exactly
    ``100 - p`` % removed, ties drawn from ``generator``.
    :func:`road_combined` is ``(mean_p LeRF - mean_p MoRF) / 2`` of these.
    """
    cams_np = _as_numpy(cams)
    if cams_np.shape != (images.shape[0], *images.shape[2:]):
        raise ValueError(f"cams shape {cams_np.shape} does not match images {tuple(images.shape)}")
    if ties not in ("gradcam", "random"):
        raise ValueError(f"ties must be 'gradcam' or 'random', got {ties!r}")
    tgt = None if targets is None else torch.as_tensor(list(targets), dtype=torch.long)
    if ties == "random":
        rng = np.random.default_rng(int(torch.randint(2**31 - 1, (1,), generator=generator)))
        masks = ranked_masks(cams_np, percentiles, rng)
    else:
        masks = road_masks(cams_np, percentiles)
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            return _drops(model, images, masks, tgt, percentiles, batch_size, generator, lerf)
    finally:
        for m, mode in modes:
            m.training = mode


def _drops(model: nn.Module, images: Tensor, masks: tuple[Tensor, Tensor], tgt: Tensor | None,
           percentiles: Sequence[float], batch_size: int, generator: torch.Generator | None,
           lerf: bool = True) -> Tensor:
    n, _, h, w = images.shape
    n_p, kinds = len(percentiles), 2 if lerf else 1
    out = torch.empty(n, kinds, n_p, dtype=torch.float32)
    for s in range(0, n, batch_size):
        e = min(n, s + batch_size)
        x = images[s:e]
        logits = _logits(model, x, batch_size)
        t = logits.argmax(-1).cpu() if tgt is None else tgt[s:e]
        before = _softmax_at(logits, t)
        chunk = [m[s:e] for m in masks[:kinds]]                 # MoRF[, LeRF]: (b, P, H, W) each
        remove = torch.cat(chunk, dim=1).reshape(-1, h, w).to(images.device)
        reps = x.repeat_interleave(kinds * n_p, dim=0)          # image-major order
        pert = impute(reps, remove, generator=generator)
        after = _softmax_at(_logits(model, pert, batch_size), t.repeat_interleave(kinds * n_p))
        out[s:e] = after.reshape(e - s, kinds, n_p) - before[:, None, None]
    return out


def _road_reference(model: nn.Module, images: Tensor, cams_np: np.ndarray, tgt: Tensor,
                    percentiles: Sequence[float], batch_size: int) -> Tensor:
    from pytorch_grad_cam.metrics.road import ROADCombined
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    metric = ROADCombined(percentiles=list(percentiles))
    out = []
    for s in range(0, images.shape[0], batch_size):
        targets = [ClassifierOutputSoftmaxTarget(int(t)) for t in tgt[s:s + batch_size]]
        out.append(np.asarray(metric(images[s:s + batch_size], cams_np[s:s + batch_size],
                                     targets, model), dtype=np.float32).reshape(-1))
    return torch.from_numpy(np.concatenate(out))
