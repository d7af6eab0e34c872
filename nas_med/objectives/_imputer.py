"""The fast imputer of ROAD: grad-cam's ``NoisyLinearImputer`` equations solved for a whole batch at once.

The reference imputer replaces every removed pixel by the weighted mean of its
in-image 8-neighbours (weight 1/6 for the 4 direct and 1/12 for the 4 diagonal
neighbours, renormalised by the sum of the weights that fall inside the image),
solving one sparse linear system per image with ``scipy.sparse.linalg.spsolve``,
and then adds ``noise * N(0, 1)`` (independently per channel) to the imputed
pixels only.  :func:`impute` solves the *same* equations for a whole batch at
once with conjugate gradients preconditioned by an aggregation multigrid
V-cycle (2x2 Galerkin coarse operators built by one stride-2 convolution per
level, damped Jacobi smoothing, over-weighted coarse correction), stopping at
a relative residual of 1e-5 (mean imputed-pixel error ~1e-5 against spsolve,
about 10-15 iterations from 28 to 224 px).  Every operator is a shifted-slice
stencil, so it runs on the device of its input; on a 2-core CPU it is 25-30x
faster than the reference at 128-224 px (see ``benchmarks/road_imputer.py``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["impute", "solve_imputation"]

# 8-neighbour offsets (dy, dx) and weights, as in the reference NoisyLinearImputer.
_OFFSETS: tuple[tuple[int, int], ...] = (
    (1, 1), (0, 1), (-1, 1), (1, -1), (0, -1), (-1, -1), (1, 0), (-1, 0))
_WEIGHTS: tuple[float, ...] = (
    1 / 12, 1 / 6, 1 / 12, 1 / 12, 1 / 6, 1 / 12, 1 / 6, 1 / 6)
_OFFSET_INDEX = {o: i for i, o in enumerate(_OFFSETS)}

# Memory cap for one batched solve, in tensor elements: each problem holds
# about (C + 8) full-size maps at the finest level (images, 8 couplings).
_MAX_SOLVE_ELEMENTS = 1 << 25


def _slices(d: int, n: int) -> tuple[slice, slice]:
    """(destination, source) slices along one axis for a shift by ``d``."""
    if d > 0:
        return slice(0, n - d), slice(d, n)
    if d < 0:
        return slice(-d, n), slice(0, n + d)
    return slice(0, n), slice(0, n)


def _filter121(x: Tensor) -> Tensor:
    """Separable ``[1 2 1]^T [1 2 1]`` filter of ``x`` with zeros outside the image."""
    v = x * 2.0
    v[..., 1:, :] += x[..., :-1, :]
    v[..., :-1, :] += x[..., 1:, :]
    u = v * 2.0
    u[..., :, 1:] += v[..., :, :-1]
    u[..., :, :-1] += v[..., :, 1:]
    return u


def _neighbour_sum(x: Tensor) -> Tensor:
    """Reference-weighted sum of the in-image 8-neighbours of every pixel."""
    # [1 2 1]^T [1 2 1] / 12 is 1/12 at the corners, 1/6 at the edges and 1/3
    # at the centre, i.e. the neighbour weights plus x / 3.
    return _filter121(x).mul_(1.0 / 12.0).sub_(x, alpha=1.0 / 3.0)


class _FineLevel:
    """Finest level: ``A x = U (s x - W x)`` for x supported on the removed set U."""

    def __init__(self, unknown: Tensor, omega: float) -> None:
        s = _neighbour_sum(torch.ones_like(unknown[:1, :1]))  # in-image weight sum
        self.active = unknown                                 # (B,1,H,W), 1.0 = removed
        self.scale = unknown * (1.0 / 12.0)                   # A x = a x - U/12 F121(x)
        self.a = unknown * (s + 1.0 / 3.0)
        self.c0 = s * unknown
        self.omega_dinv = unknown * (omega / s)
        self.h, self.w = unknown.shape[-2:]

    def apply(self, x: Tensor) -> Tensor:
        out = self.a * x
        return out.addcmul_(self.scale, _filter121(x), value=-1.0)

    def residual(self, r: Tensor, x: Tensor) -> Tensor:
        """``r - A x``."""
        out = torch.addcmul(r, self.a, x, value=-1.0)
        return out.addcmul_(self.scale, _filter121(x))

    def couplings(self) -> Tensor:
        """(B,8,H,W) off-diagonal couplings ``K_d = w_d U U[. + d]``."""
        u, h, w = self.active, self.h, self.w
        up = F.pad(u, (1, 1, 1, 1))
        k = torch.empty((u.shape[0], len(_OFFSETS), h, w), dtype=u.dtype, device=u.device)
        for d, (dy, dx) in enumerate(_OFFSETS):
            torch.mul(u, up[..., 1 + dy:1 + dy + h, 1 + dx:1 + dx + w], out=k[:, d:d + 1])
        wts = torch.tensor(_WEIGHTS, dtype=u.dtype, device=u.device)
        return k.mul_(wts[:, None, None])


class _CoarseLevel:
    """Coarse level: ``A x = c0 x - sum_d K_d x[. + d]`` (9-point, variable)."""

    def __init__(self, c0: Tensor, k: Tensor, active: Tensor, omega: float) -> None:
        self.c0, self.k, self.active = c0, k, active
        self.omega_dinv = torch.where(c0 > 1e-12, omega / c0.clamp_min(1e-12),
                                      torch.zeros_like(c0))
        self.h, self.w = c0.shape[-2:]
        self._sl = [(_slices(dy, self.h), _slices(dx, self.w)) for dy, dx in _OFFSETS]

    def _add_offdiag(self, out: Tensor, x: Tensor, sign: float) -> Tensor:
        for d, ((ty, sy), (tx, sx)) in enumerate(self._sl):
            out[..., ty, tx].addcmul_(self.k[:, d:d + 1, ty, tx], x[..., sy, sx], value=sign)
        return out

    def apply(self, x: Tensor) -> Tensor:
        return self._add_offdiag(self.c0 * x, x, -1.0)

    def residual(self, r: Tensor, x: Tensor) -> Tensor:
        """``r - A x``."""
        return self._add_offdiag(torch.addcmul(r, self.c0, x, value=-1.0), x, 1.0)


def _pad_even(x: Tensor) -> Tensor:
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        x = F.pad(x, (0, w % 2, 0, h % 2))
    return x


def _aggregation_kernel(dtype: torch.dtype, device: torch.device) -> Tensor:
    """(9, 8, 2, 2) stride-2 conv kernel summing the fine couplings of each 2x2
    aggregate into the coarse operator: output channel 0 collects (negated) the
    couplings inside the aggregate, to be added to the diagonal; channels 1..8
    the couplings towards the 8 neighbouring aggregates (``_OFFSETS`` order)."""
    m = torch.zeros(9, len(_OFFSETS), 2, 2, dtype=dtype)
    for d, (dy, dx) in enumerate(_OFFSETS):
        for py in (0, 1):
            for px in (0, 1):
                cy, cx = (py + dy) // 2, (px + dx) // 2
                if cy == 0 and cx == 0:
                    m[0, d, py, px] = -1.0
                else:
                    m[1 + _OFFSET_INDEX[(cy, cx)], d, py, px] = 1.0
    return m.to(device)


def _coarsen(c0: Tensor, k: Tensor, active: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Galerkin operator ``P^T A P`` for 2x2 aggregation (piecewise-constant P)."""
    c0, k, active = _pad_even(c0), _pad_even(k), _pad_even(active)
    agg = F.conv2d(k, _aggregation_kernel(k.dtype, k.device), stride=2)
    c0c = _restrict(c0).add_(agg[:, :1])
    return c0c, agg[:, 1:].contiguous(), F.max_pool2d(active, 2)


def _restrict(r: Tensor) -> Tensor:
    """``P^T r``: sum over each 2x2 aggregate."""
    r = _pad_even(r)
    return r[..., 0::2, 0::2] + r[..., 0::2, 1::2] + r[..., 1::2, 0::2] + r[..., 1::2, 1::2]


def _prolong(e: Tensor, h: int, w: int) -> Tensor:
    """Piecewise-constant interpolation to an ``h x w`` grid (before masking)."""
    b, c, hc, wc = e.shape
    e = e[:, :, :, None, :, None].expand(b, c, hc, 2, wc, 2).reshape(b, c, 2 * hc, 2 * wc)
    return e[..., :h, :w]


class _Multigrid:
    """Aggregation multigrid hierarchy, used as a symmetric CG preconditioner.

    The coarse-grid correction is over-weighted by ``gamma`` (plain 2x2
    aggregation under-corrects smooth errors); with the damped-Jacobi weights
    below this halves the CG iterations on ROAD-like masks.
    """

    def __init__(self, unknown: Tensor, omega_fine: float = 0.8,
                 omega_coarse: float = 1.0, gamma: float = 1.5, coarsest: int = 2,
                 coarse_sweeps: int = 4) -> None:
        fine = _FineLevel(unknown, omega_fine)
        self.levels: list[_FineLevel | _CoarseLevel] = [fine]
        self.gamma = gamma
        self.coarse_sweeps = coarse_sweeps
        c0, k, act = fine.c0, fine.couplings(), unknown
        while max(c0.shape[-2:]) > coarsest:
            c0, k, act = _coarsen(c0, k, act)
            self.levels.append(_CoarseLevel(c0, k, act, omega_coarse))

    @property
    def fine(self) -> _FineLevel:
        return self.levels[0]  # type: ignore[return-value]

    def vcycle(self, r: Tensor, lvl: int = 0) -> Tensor:
        """Symmetric V(1,1) cycle with zero initial guess, applied to residual r."""
        level = self.levels[lvl]
        x = level.omega_dinv * r
        if lvl == len(self.levels) - 1:
            for _ in range(self.coarse_sweeps - 1):
                x.addcmul_(level.omega_dinv, level.residual(r, x))
            return x
        ec = self.vcycle(_restrict(level.residual(r, x)), lvl + 1)
        x.addcmul_(level.active, _prolong(ec, level.h, level.w), value=self.gamma)
        x.addcmul_(level.omega_dinv, level.residual(r, x))
        return x


def solve_imputation(images: Tensor, remove: Tensor, tol: float = 1e-5,
                     max_iter: int = 200) -> tuple[Tensor, int, float]:
    """Noise-free solution of the reference imputation equations for a batch.

    Returns ``(imputed images, CG iterations, max relative residual)``.  The
    stopping rule is ``||r|| <= tol * ||b||`` for every image and channel.
    Images whose pixels are all removed (singular in the reference, where
    spsolve returns NaN) get zeros.
    """
    u = remove.to(images.dtype).unsqueeze(1)
    known = images * (1.0 - u)
    mg = _Multigrid(u)
    fine = mg.fine
    b = _neighbour_sum(known).mul_(u)
    bnorm = b.square().sum((2, 3)).sqrt()
    x = torch.zeros_like(images)
    r = b
    rel = 0.0 if bnorm.max().item() == 0 else 1.0
    it = 0
    if rel > 0:
        z = mg.vcycle(r)
        p = z.clone()
        rz = (r * z).sum((2, 3), keepdim=True)
        for it in range(1, max_iter + 1):  # noqa: B007 (returned: the iterations used)
            ap = fine.apply(p)
            pap = (p * ap).sum((2, 3), keepdim=True)
            alpha = torch.where(pap > 0, rz / pap.clamp_min(1e-30), torch.zeros_like(pap))
            x.addcmul_(alpha, p)
            r = r - alpha * ap
            rel = (r.square().sum((2, 3)).sqrt() / bnorm.clamp_min(1e-30)).max().item()
            if rel <= tol:
                break
            z = mg.vcycle(r)
            rz_new = (r * z).sum((2, 3), keepdim=True)
            beta = torch.where(rz > 0, rz_new / rz.clamp_min(1e-30), torch.zeros_like(rz))
            rz = rz_new
            p = p.mul_(beta).add_(z)
    return known.add_(x), it, rel


def impute(images: Tensor, remove: Tensor, noise: float = 0.01, *,
           generator: torch.Generator | None = None, tol: float = 1e-5,
           max_iter: int = 200) -> Tensor:
    """Batched noisy linear imputation (grad-cam's ``NoisyLinearImputer``).

    Args:
        images: ``(B, C, H, W)`` float tensor.
        remove: ``(B, H, W)`` bool tensor, True where a pixel is removed.
        noise: std of the Gaussian noise added to the imputed pixels.
        generator: optional RNG for the noise.
        tol, max_iter: CG stopping rule (relative residual) and iteration cap.

    Returns:
        ``(B, C, H, W)`` tensor on ``images.device``; pixels not removed are
        returned unchanged, removed ones are the weighted mean of their
        8-neighbours (the reference's linear system) plus noise.
    """
    if images.ndim != 4 or remove.shape != (images.shape[0], *images.shape[2:]):
        raise ValueError(f"expected images (B,C,H,W) and remove (B,H,W), got "
                         f"{tuple(images.shape)} and {tuple(remove.shape)}")
    remove = remove.to(device=images.device, dtype=torch.bool)
    work = images if images.dtype in (torch.float32, torch.float64) else images.float()
    with torch.no_grad():
        n, _, h, w = work.shape
        step = max(1, _MAX_SOLVE_ELEMENTS // (h * w * (work.shape[1] + 8)))
        parts = [solve_imputation(work[i:i + step], remove[i:i + step], tol, max_iter)[0]
                 for i in range(0, n, step)]
        out = torch.cat(parts) if len(parts) > 1 else parts[0]
        if noise:
            eps = torch.randn(out.shape, generator=generator, dtype=out.dtype,
                              device=out.device if generator is None else generator.device)
            out.addcmul_(remove.unsqueeze(1).to(out.dtype), eps.to(out.device), value=noise)
        # keep the untouched pixels bit-identical to the input
        out = torch.where(remove.unsqueeze(1), out, work)
    return out.to(images.dtype)
