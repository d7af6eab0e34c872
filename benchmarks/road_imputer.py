"""Benchmark: fast batched ROAD imputer vs grad-cam's reference NoisyLinearImputer.

Measures, for image sizes 28, 64, 128 and 224 px, the per-image ROADCombined
score (percentiles 20/40/60/80, ``ClassifierOutputSoftmaxTarget`` of the
predicted class) computed by ``nas_med.objectives.road.road_combined`` with
``imputer="fast"`` (multigrid-preconditioned CG, batched torch) and with
``imputer="reference"`` (grad-cam's own ``ROADCombined``, scipy ``spsolve`` per
image), on the SAME model and the SAME Grad-CAM maps.  It prints per size: the
number of images, the mean |fast - reference| score difference, the
wall-clock seconds of the whole ``road_combined`` call for both paths and the
speed-up, plus the seconds spent inside the imputers alone (the rest is model
forward passes and mask construction).  It also prints the mean ROAD score of
the real, a random and an inverted (1 - cam) CAM (sanity: real > random >
inverted; note that ROADCombined is antisymmetric under cam -> 1 - cam, since
MoRF of the inverted map is LeRF of the original, so inverted ~ -real by
construction).  The last line is ``RESULT mad=... speedup_128=... (goal ...)``.

Goals: mean |fast - reference| <= 0.02 over >= 50 images spanning all sizes,
and the fast path >= 10x faster than the reference at 128 and 224 px on a
2-core CPU.

The model is a small CNN (conv+ReLU+pool blocks, global average pool, linear)
trained for 150 Adam steps (40 with --quick; 10-30 s) on generated grayscale
images of 28-128 px whose class is the presence of a bright Gaussian blob
(negatives carry a dark blob instead), all from a fixed seed.  Grad-CAM maps
(``pytorch_grad_cam.GradCAM``, last conv block, predicted class) are computed
for images that contain a blob; images whose CAM is constant are skipped (the
reference imputer then has no known pixel and returns NaN).

Timing notes: wall-clock and process CPU seconds are both printed.  The
script sets ``OMP_WAIT_POLICY=PASSIVE`` unless the environment already sets
it: on a 2-core machine shared with other processes, OpenMP's default
spin-waiting makes every multi-threaded torch op (model and fast imputer
alike) wait for a descheduled worker and slows them 10-30x; export
``OMP_WAIT_POLICY=ACTIVE`` to measure the default behaviour.

Run:  .venv/bin/python benchmarks/road_imputer.py [--quick] [--threads N]
(default 2 threads; --quick: 13 images, under ~60 s)
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP

import math  # noqa: E402
import time  # noqa: E402

import _common  # noqa: E402  (puts the repository on sys.path)
import numpy as np  # noqa: E402
import pytorch_grad_cam.metrics.road as gc_road  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from pytorch_grad_cam import GradCAM  # noqa: E402
from torch import nn  # noqa: E402

import nas_med.objectives.road as road  # noqa: E402

SIZES = (28, 64, 128, 224)


def make_images(n: int, size: int, gen: torch.Generator, blob: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Grayscale images (n,1,size,size); label 1 iff a bright blob is present."""
    if blob is None:
        blob = torch.rand(n, generator=gen) < 0.5
    coarse = torch.randn(n, 1, 6, 6, generator=gen)
    img = 0.35 * F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    img = img + 0.15 * torch.randn(n, 1, size, size, generator=gen)
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float32),
                            torch.arange(size, dtype=torch.float32), indexing="ij")
    for i in range(n):
        sigma = size * (0.05 + 0.05 * torch.rand(1, generator=gen).item())
        cy, cx = (size * (0.2 + 0.6 * torch.rand(2, generator=gen))).tolist()
        g = torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma ** 2))
        if blob[i]:
            img[i, 0] += (1.2 + 0.6 * torch.rand(1, generator=gen).item()) * g
        else:  # distractor: a dark blob of the same shape
            img[i, 0] -= (0.8 + 0.4 * torch.rand(1, generator=gen).item()) * g
    return img, blob.long()


class SmallCNN(nn.Module):
    """Conv+ReLU+pool blocks, global average pooling and a linear head."""

    def __init__(self, width: int = 16, classes: int = 2) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(1, w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.ReLU(),
        )
        self.head = nn.Linear(2 * w, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


def train(model: nn.Module, steps: int, gen: torch.Generator) -> int:
    """Train for ``steps`` Adam steps on a cycle of image sizes."""
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sizes = (28, 48, 64, 96, 128)
    batch = {28: 64, 48: 48, 64: 32, 96: 16, 128: 12}
    model.train()
    for step in range(steps):
        s = sizes[step % len(sizes)]
        x, y = make_images(batch[s], s, gen)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return steps


def grad_cams(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    with GradCAM(model=model, target_layers=[model.features[-1]]) as cam:
        return cam(input_tensor=x, targets=None)


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def timed_cpu(fn, *args, **kwargs):
    """Returns (result, wall seconds, process CPU seconds)."""
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0, time.process_time() - c0


class ImputeTimer:
    """Accumulates the time spent inside both imputers (monkey-patched)."""

    def __init__(self) -> None:
        self.ref = 0.0
        self.fast = 0.0
        self._ref_call = gc_road.NoisyLinearImputer.__call__
        self._fast_impute = road.impute

    def __enter__(self) -> ImputeTimer:
        timer, ref_call, fast_impute = self, self._ref_call, self._fast_impute

        def ref_wrapper(imp, img, mask):
            t0 = time.perf_counter()
            out = ref_call(imp, img, mask)
            timer.ref += time.perf_counter() - t0
            return out

        def fast_wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            out = fast_impute(*args, **kwargs)
            timer.fast += time.perf_counter() - t0
            return out

        gc_road.NoisyLinearImputer.__call__ = ref_wrapper
        road.impute = fast_wrapper
        return self

    def __exit__(self, *exc) -> None:
        gc_road.NoisyLinearImputer.__call__ = self._ref_call
        road.impute = self._fast_impute


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    ap = _common.parser(__doc__)
    ap.set_defaults(threads=2)
    ap.add_argument("--train-steps", type=int, default=None,
                    help="Adam steps of the small CNN (default 150, --quick 40)")
    ap.add_argument("--counts", type=str, default=None,
                    help="images per size 28,64,128,224 (default 16,16,12,12; --quick 6,4,2,1)")
    args = ap.parse_args(argv)
    _common.setup(args)
    print(f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}")

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    counts_s = args.counts or ("6,4,2,1" if args.quick else "16,16,12,12")
    counts = dict(zip(SIZES, (int(c) for c in counts_s.split(","))))
    train_steps = args.train_steps or (40 if args.quick else 150)

    gen = torch.Generator().manual_seed(args.seed)
    model = SmallCNN()
    steps, t_train = timed(train, model, train_steps, gen)
    print(f"trained SmallCNN for {steps} steps ({t_train:.1f} s)")

    rng = np.random.default_rng(args.seed)
    noise_gen = torch.Generator().manual_seed(args.seed + 1)
    rows, all_diff, floor = [], [], []
    sanity = {"real": [], "random": [], "inverted": []}
    print("per size: n images, blob accuracy, mean/max |fast - reference| ROADCombined score;")
    print("seconds of the whole road_combined call (wall and process CPU) and of the imputers "
          "alone (wall); x = reference / fast")
    header = (f"{'size':>5} {'n':>4} {'acc':>5} {'MAD':>7} {'max|d|':>7} | {'ref s':>7} "
              f"{'fast s':>7} {'x':>6} | {'ref cpu':>7} {'fastcpu':>7} {'x':>6} | "
              f"{'ref imp':>7} {'fastimp':>7} {'x':>6}")
    print(header)

    def line(name: str, n: int, acc: str, d: torch.Tensor, t: list[float]) -> str:
        return (f"{name:>5} {n:>4} {acc:>5} {d.mean().item():>7.4f} {d.max().item():>7.4f} | "
                f"{t[0]:>7.2f} {t[1]:>7.2f} {t[0] / t[1]:>5.1f}x | {t[2]:>7.2f} {t[3]:>7.2f} "
                f"{t[2] / t[3]:>5.1f}x | {t[4]:>7.2f} {t[5]:>7.2f} {t[4] / t[5]:>5.1f}x")

    for size in SIZES:
        n = counts[size]
        if n <= 0:
            continue
        eval_gen = torch.Generator().manual_seed(args.seed * 1000 + size)
        x, y = make_images(4 * n, size, eval_gen, blob=torch.ones(4 * n, dtype=torch.bool))
        with torch.no_grad():
            acc = (model(x).argmax(1) == y).float().mean().item()
        cams = grad_cams(model, x)
        ok = np.ptp(cams.reshape(len(cams), -1), axis=1) > 1e-6  # constant CAM: reference NaN
        idx = np.flatnonzero(ok)[:n]
        x, cams = x[idx].contiguous(), cams[idx]
        road.road_combined(model, x[:1], cams[:1])  # warm-up
        with ImputeTimer() as timer:
            s_ref, w_ref, c_ref = timed_cpu(road.road_combined, model, x, cams,
                                            imputer="reference")
            s_fast, w_fast, c_fast = timed_cpu(road.road_combined, model, x, cams,
                                               imputer="fast", generator=noise_gen)
        diff = (s_fast - s_ref).abs()
        all_diff.append(diff)
        # noise floor: the same fast computation with other imputation noise
        s_fast2 = road.road_combined(model, x, cams, generator=noise_gen)
        floor.append((s_fast2 - s_fast).abs())
        t = [w_ref, w_fast, c_ref, c_fast, timer.ref, timer.fast]
        rows.append((size, len(idx), t))
        print(line(str(size), len(idx), f"{acc:.2f}", diff, t))
        rand = rng.random(cams.shape).astype(np.float32)
        sanity["real"].append(s_fast)
        sanity["random"].append(road.road_combined(model, x, rand, generator=noise_gen))
        sanity["inverted"].append(road.road_combined(model, x, 1 - cams, generator=noise_gen))

    d = torch.cat(all_diff)
    n_tot = sum(r[1] for r in rows)
    tot = [sum(r[2][k] for r in rows) for k in range(6)]
    print(line("all", n_tot, "", d, tot))
    print(f"noise floor: mean |fast - fast| with other noise draws = {torch.cat(floor).mean().item():.4f} "
          f"(per size {' '.join(f'{v.mean().item():.4f}' for v in floor)})")
    print("mean ROADCombined score (fast imputer), per size and overall:")
    for kind, vals in sanity.items():
        per = " ".join(f"{s}px={v.mean().item():+.4f}" for s, v in zip((r[0] for r in rows), vals))
        print(f"  {kind:>8}: {torch.cat(vals).mean().item():+.4f}   ({per})")
    real, rnd, inv = (torch.cat(v).mean().item() for v in sanity.values())
    print(f"sanity real > random > inverted: {real > rnd > inv}")
    big = {r[0]: r[2] for r in rows if r[0] >= 128}
    wall_ok = all(t[0] / t[1] >= 10 for t in big.values())
    cpu_ok = all(t[2] / t[3] >= 10 for t in big.values())
    print(f"goal MAD <= 0.02 over {n_tot} images: {d.mean().item() <= 0.02}; "
          f">=10x at 128/224 px, whole call: wall {wall_ok}, cpu {cpu_ok}")
    figures: dict[str, float] = {"mad": d.mean().item(), "n": float(n_tot)}
    for size, t in big.items():
        figures[f"speedup_{size}"] = t[0] / t[1]
        figures[f"imputer_speedup_{size}"] = t[4] / t[5]
    figures["speedup_all"] = tot[0] / tot[1]
    _common.result(figures, "goal mad <= 0.02 over >= 50 images, speedup >= 10 at 128 and 224 px", started)
    return 0 if math.isfinite(d.mean().item()) else 1

if __name__ == "__main__":
    raise SystemExit(main())
