"""Epoch time under load: do 10 fixed candidates rank alike by ``epoch_seconds`` on an idle machine and with a
competing CPU-bound process?

Goal: Spearman rank correlation of ``epoch_seconds`` between the two conditions >= 0.9.

``epoch_seconds`` (nas_med.train) is the number of training steps per epoch times a low quantile (10 %) of the
step times of all epochs: other processes lengthen some steps, not all, so a low quantile measures the network
on this device. The old measure, the median of the epochs' wall times, is kept beside it as
``epoch_seconds_raw``; its Spearman is printed for comparison (not the goal).

Candidates: 10 specs drawn at random (seeded) from the default search space at 32 px, on the embedded synthetic
dataset (600 train images, 4 classes), default precision, batch 32, 3 epochs each. For every candidate, in turn:
one run alone, then one run while ``--busy`` busy-looping Python processes (started by this script, default 1)
compete for the CPU; alternating per candidate keeps slow drifts of the machine's own load out of the comparison.
The loaded/idle ratio of the median epoch time is printed for both measures.

--quick: 4 candidates at 16 px, 1 epoch.

Reproduce:  .venv/bin/python benchmarks/epoch_time.py            (full, ~2-4 min on 2 cores)
            .venv/bin/python benchmarks/epoch_time.py --busy 2   (one busy process per core of a 2-core machine)
            .venv/bin/python benchmarks/epoch_time.py --quick
"""
from __future__ import annotations

import contextlib
import subprocess
import sys
import time

from _common import parser, result, setup

BUSY = "while True:\n    pass\n"


@contextlib.contextmanager
def busy(n: int):
    """``n`` CPU-bound processes for the duration of the block."""
    procs = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(n)]
    time.sleep(0.3)  # let them get going
    try:
        yield
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def candidates(count: int, size: int, seed: int, in_channels: int = 1, num_classes: int = 4) -> list:
    """``count`` valid specs drawn at random from the default space (seeded), ordered by FLOPs."""
    import optuna

    from nas_med.arch import InvalidSpec, check
    from nas_med.arch.cost import spec_cost
    from nas_med.space import load_space, sample

    space = load_space("default")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out, seen = [], set()
    while len(out) < count:
        spec = sample(study.ask(), space, in_channels=in_channels, num_classes=num_classes, input_size=size)
        try:
            check(spec)
        except InvalidSpec:
            continue
        if spec.summary() in seen:
            continue
        seen.add(spec.summary())
        out.append((spec_cost(spec)["flops"], spec))
    return [s for _, s in sorted(out, key=lambda fs: fs[0])]


def spearman(a, b) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--busy", type=int, default=1, help="competing CPU-bound processes in the loaded condition")
    args = ap.parse_args()
    setup(args)
    started = time.perf_counter()
    import torch

    from nas_med.arch import build
    from nas_med.data import load_dataset
    from nas_med.train import TrainConfig, train

    count, size, epochs = (4, 16, 1) if args.quick else (10, 32, 3)
    data = load_dataset("synthetic", size=size, seed=args.seed)
    specs = candidates(count, size, args.seed, data.in_channels, data.num_classes)
    cfg = TrainConfig(epochs=epochs, lr=1e-3, batch_size=32, device="cpu", seed=args.seed)
    rows = {"idle": [], "loaded": []}
    for i, spec in enumerate(specs):
        for condition in ("idle", "loaded"):
            torch.manual_seed(args.seed)
            model = build(spec)
            with busy(args.busy) if condition == "loaded" else contextlib.nullcontext():
                r = train(model, data, cfg)
            rows[condition].append((r.epoch_seconds, r.epoch_seconds_raw))
        (ei, ri), (el, rl) = rows["idle"][-1], rows["loaded"][-1]
        print(f"candidate {i}: {spec.summary()} ({r.precision})\n    epoch_seconds idle {ei:.4f} loaded {el:.4f}"
              f" | raw idle {ri:.4f} loaded {rl:.4f}", flush=True)
    est = [spearman([r[k] for r in rows["idle"]], [r[k] for r in rows["loaded"]]) for k in (0, 1)]

    def ratio(k: int) -> float:
        import statistics

        return statistics.median(lo[k] / id_[k] for lo, id_ in zip(rows["loaded"], rows["idle"], strict=True))

    print(f"Spearman idle vs loaded: epoch_seconds {est[0]:+.3f}, raw median wall time {est[1]:+.3f}")
    print(f"median loaded/idle: epoch_seconds {ratio(0):.3f}, raw {ratio(1):.3f} ({args.busy} busy process(es))")
    result({"epoch_seconds_spearman": round(est[0], 4), "raw_spearman": round(est[1], 4),
            "loaded_idle_ratio": round(ratio(0), 4)}, "goal epoch_seconds_spearman >= 0.9", started)


if __name__ == "__main__":
    main()
