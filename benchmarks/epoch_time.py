"""Epoch time: how well the cost model behind the ``epoch_seconds`` objective ranks measured epoch times.

Goal: on an idle machine, Spearman rank correlation >= 0.9 between the cost model's epoch seconds (the objective
of a new study, ``nas_med.objectives.epoch_cost``) and the measured ones (``epoch_seconds_measured``: training
steps per epoch x the 25th percentile of the steps' CPU time) of a study's completed trials. The median relative
error |model - measured| / measured is printed beside it, and the Spearman's 95 % bootstrap interval.

Evaluate (default): ``nas_med.search.search`` on BreastMNIST (real files from ../shared/data) at 28 and 64 px,
default space, 20 trials of 2 epochs per size, no pruning (every trial completes), ``--threads 2`` (what a new
study uses on a 2-core machine); Spearman per size and pooled.
--fit: time reference networks instead (drawn from the default and paper spaces with seed 1000, never the
evaluation's; 64 networks, three in four from the default space; synthetic images at 16, 28, 64 and 128 px, batch
32 or 64, a third with light augmentation; one epoch each through ``nas_med.train.train``) and print the coefficients to paste into ``REFERENCE_CPU`` with their
in-sample figures. The CPU and load are printed first: fit and evaluate only on an idle machine.
--quick: synthetic 16 px, tiny space, 5 trials of 1 epoch (and, with --fit, 8 reference networks).

Reproduce:  .venv/bin/python benchmarks/epoch_time.py --threads 2          (~4 min on 2 idle cores)
            .venv/bin/python benchmarks/epoch_time.py --threads 2 --fit    (~5 min)
            .venv/bin/python benchmarks/epoch_time.py --quick
"""
from __future__ import annotations

import statistics
import time

from _common import parser, result, setup, shared_data, temp_storage


def spearman(a, b) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def bootstrap_interval(a, b, rounds: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95 % percentile interval of the Spearman correlation over resampled pairs."""
    import numpy as np

    rng = np.random.default_rng(seed)
    a, b = np.asarray(a), np.asarray(b)
    values = []
    for _ in range(rounds):
        idx = rng.integers(0, len(a), len(a))
        if len(set(a[idx])) > 1 and len(set(b[idx])) > 1:
            values.append(spearman(a[idx], b[idx]))
    return (float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))) if values else (float("nan"),) * 2


def cpu_line() -> str:
    from nas_med.precision import cpu_bf16_flags
    from nas_med.search.reproducibility import cpu_name

    flags = sorted(cpu_bf16_flags())
    return f"CPU: {cpu_name()}" + (f" ({', '.join(flags)})" if flags else " (no bf16 units)")


def reference_networks(count: int, seed: int, sizes: tuple[int, ...]):
    """``count`` (spec, batch size, augment) drawn from the default and paper spaces, sizes in turn."""
    import optuna

    from nas_med.arch import InvalidSpec, check
    from nas_med.space import load_space, sample

    spaces = [load_space("default"), load_space("paper")]
    studies = [optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed + k)) for k in range(2)]
    out, seen = [], set()
    while len(out) < count:
        i = len(out)
        size, k = sizes[i % len(sizes)], int((i // len(sizes)) % 4 == 3)  # 3 of 4 from the default space
        spec = sample(studies[k].ask(), spaces[k], in_channels=1, num_classes=4, input_size=size)
        try:
            check(spec)
        except InvalidSpec:
            continue
        if (spec.summary(), size) in seen:
            continue
        seen.add((spec.summary(), size))
        out.append((spec, (32, 64)[(i // 2) % 2], "light" if i % 3 == 2 else "none"))
    return out


def fit(args) -> None:
    import torch

    from nas_med.arch import build, spec_cost
    from nas_med.data import load_dataset
    from nas_med.objectives.epoch_cost import FEATURES, EpochWork, fit_cost_model
    from nas_med.train import TrainConfig, train

    sizes = (16, 28) if args.quick else (16, 28, 64, 128)
    count = 8 if args.quick else 64
    datasets = {s: load_dataset("synthetic", size=s, seed=args.seed) for s in sizes}
    samples = []
    for i, (spec, batch, augment) in enumerate(reference_networks(count, 1000, sizes)):
        data = datasets[spec.input_size]
        torch.manual_seed(i)
        r = train(build(spec), data, TrainConfig(epochs=1, batch_size=batch, device="cpu", seed=i, augment=augment))
        images = data.train.images
        work = EpochWork.of(spec_cost(spec), batch, len(images), images[0].numel(), augmented=augment != "none")
        samples.append((work, r.epoch_seconds))
        print(f"  {i:2d} {spec.input_size:3d} px b{batch} {augment:5s} {r.epoch_seconds:8.4f} s  {spec.summary()}",
              flush=True)
    model = fit_cost_model(samples, "fitted", cpu_line())
    predicted = [model.epoch_seconds(w) for w, _ in samples]
    measured = [s for _, s in samples]
    rel = statistics.median(abs(p - m) / m for p, m in zip(predicted, measured))
    rho = spearman(predicted, measured)
    print("coefficients (seconds per unit, per step):")
    for name, c in zip(FEATURES, model.coefficients):
        print(f"  {name:17s} {c:.4g}")
    print(f"coefficients=({', '.join(f'{c:.4g}' for c in model.coefficients)})")
    result({"fit_spearman": round(rho, 4), "fit_median_rel_error": round(rel, 4)},
           "goal in-sample; the evaluation run checks the model on a study", args.started)


def evaluate(args) -> None:
    from nas_med.search import SearchConfig, search
    from nas_med.search.records import EPOCH_SECONDS_MEASURED
    from nas_med.select import completed

    if args.quick:
        runs = [("synthetic", None, 16, "tiny", 5, 1)]
    else:
        root = str(shared_data("breastmnist"))
        runs = [("breastmnist", root, size, "default", 20, 2) for size in (28, 64)]
    pooled_model, pooled_measured = [], []
    for dataset, root, size, space, trials, epochs in runs:
        with temp_storage() as url:
            study = search(SearchConfig(dataset=dataset, data_root=root, size=size, space=space, trials=trials,
                                        epochs=epochs, pruner="none", storage=url, seed=args.seed, device="cpu",
                                        threads=args.threads, quiet=True, artifacts=False))
            rows = [(t.values[2], t.user_attrs.get(EPOCH_SECONDS_MEASURED)) for t in completed(study)]
        rows = [(m, s) for m, s in rows if s]
        model, measured = [m for m, _ in rows], [s for _, s in rows]
        rho, (lo, hi) = spearman(model, measured), bootstrap_interval(model, measured)
        rel = statistics.median(abs(m - s) / s for m, s in rows)
        print(f"{dataset} {size} px: {len(rows)} trials, Spearman {rho:+.3f} [95 % {lo:+.3f}, {hi:+.3f}], "
              f"median relative error {rel:.3f}, measured {min(measured):.3f}-{max(measured):.3f} s", flush=True)
        pooled_model += model
        pooled_measured += measured
    rho, (lo, hi) = spearman(pooled_model, pooled_measured), bootstrap_interval(pooled_model, pooled_measured)
    rel = statistics.median(abs(m - s) / s for m, s in zip(pooled_model, pooled_measured))
    print(f"pooled: {len(pooled_model)} trials, Spearman {rho:+.3f} [95 % {lo:+.3f}, {hi:+.3f}], median relative "
          f"error {rel:.3f}")
    result({"spearman": round(rho, 4), "spearman_low": round(lo, 4), "median_rel_error": round(rel, 4)},
           "goal spearman >= 0.9 on an idle machine", args.started)


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--fit", action="store_true", help="time reference networks and fit the coefficients")
    args = ap.parse_args()
    args.started = time.perf_counter()
    setup(args)
    print(cpu_line(), flush=True)
    fit(args) if args.fit else evaluate(args)


if __name__ == "__main__":
    main()
