"""Adam and AdamW for the K copies of a wide network (``nas_med.fused.wide``), each copy with its own learning
rate, weight decay and step count, and a mask of the copies that take this step.

The update is torch.optim's single-tensor Adam / AdamW (the CPU default) written per copy: every wide tensor is
viewed as (K, -1) and the per-copy numbers are (K, 1) tensors; a copy left out of a step keeps its weights, moments
and step count, exactly as a separate run that had not reached that step."""
from __future__ import annotations

from typing import Sequence

import torch

from ..errors import UserError

__all__ = ["CopyAdam"]


class CopyAdam:
    """Adam (``decoupled=False``) or AdamW over ``params`` (wide tensors whose first dimension splits into K)."""

    def __init__(self, params: Sequence[torch.Tensor], k: int, lrs: Sequence[float], weight_decays: Sequence[float],
                 decoupled: bool, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        if len(lrs) != k or len(weight_decays) != k:
            raise UserError(f"CopyAdam needs {k} learning rates and weight decays, got {len(lrs)} and "
                            f"{len(weight_decays)}.")
        self.params, self.k, self.decoupled = list(params), k, decoupled
        self.base_lrs = [float(x) for x in lrs]
        self.weight_decays = [float(x) for x in weight_decays]
        self.beta1, self.beta2, self.eps = betas[0], betas[1], eps
        self.steps = [0] * k
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def _per_copy(self, values: Sequence[float], p: torch.Tensor) -> torch.Tensor | float:
        """``values`` (one per copy) broadcastable against wide tensor ``p`` (dim 0 = K blocks); a float when equal."""
        if all(v == values[0] for v in values):
            return float(values[0])
        column = torch.tensor(values, dtype=p.dtype, device=p.device)
        return column.repeat_interleave(p.shape[0] // self.k).view(-1, *[1] * (p.dim() - 1))

    @torch.no_grad()
    def step(self, active: Sequence[bool], lr_factors: Sequence[float]) -> None:
        """One step for the copies marked ``active``, copy k at ``base_lr[k] * lr_factors[k]``."""
        if not any(active):
            return
        steps = [s + 1 if a else s for s, a in zip(self.steps, active)]
        lrs = [lr * f for lr, f in zip(self.base_lrs, lr_factors)]
        # bias corrections in double precision, as torch's (Python floats), then one float per copy
        step_sizes = [-lr / (1 - self.beta1 ** max(1, s)) for lr, s in zip(lrs, steps)]
        bc2_sqrt = [(1 - self.beta2 ** max(1, s)) ** 0.5 for s in steps]
        decays = [1 - lr * w for lr, w in zip(lrs, self.weight_decays)]
        any_decay = any(self.weight_decays)
        for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq):
            if p.grad is None:
                continue
            g = p.grad
            mask = None if all(active) else self._per_copy([float(a) for a in active], p) > 0.5
            if mask is not None:  # the inactive copies' new values are thrown away below
                old = (p.clone(), m.clone(), v.clone())
            if any_decay and self.decoupled:
                p.mul_(self._per_copy(decays, p))
            elif any_decay:
                wd = self._per_copy(self.weight_decays, p)
                g = g.add(p, alpha=wd) if isinstance(wd, float) else g.add(p * wd)
            m.lerp_(g, 1 - self.beta1)
            v.mul_(self.beta2).addcmul_(g, g, value=1 - self.beta2)
            bc2, size = self._per_copy(bc2_sqrt, p), self._per_copy(step_sizes, p)
            denom = (v.sqrt() / bc2).add_(self.eps)
            if isinstance(size, float):
                p.addcdiv_(m, denom, value=size)
            else:
                p.add_(m / denom * size)
            if mask is not None:
                p.copy_(torch.where(mask, p, old[0]))
                m.copy_(torch.where(mask, m, old[1]))
                v.copy_(torch.where(mask, v, old[2]))
        self.steps = steps
