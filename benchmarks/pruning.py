"""Pruning: training epochs spent and hypervolume reached, with and without pruning, at the same trial count.

Goal: pruning spends at most 70 % of the training epochs (epoch_ratio <= 0.70) while reaching at least 95 % of
the hypervolume of the unpruned search (hv_ratio >= 0.95), over at least 8 seeds, with the 95 % interval of the
ratio printed (bootstrap over seeds).

Per seed, two ``nas_med.search.search`` runs with the same TPE sampler seed, the same data and the same number of
trials: one with the median pruner (the default of ``nas-med search``, through the shadow study and Pareto-aware:
a candidate is stopped only when a completed one with no more parameters and FLOPs beat it at the same epoch;
``--pruner`` picks another, e.g. ``pareto`` or ``hyperband``), one with ``--pruner none``. Epochs are counted from the ``history`` user attr of every trial
(completed, pruned and failed). Hypervolume: completed candidates of each run, on one normalisation fitted to
both runs of that seed (``nas_med.report.hypervolume``: losses -AUC, log10 params, log10 epoch seconds, -CAM
quality, scaled to [0, 1], reference point 1.1; exact WFG). Every objective is deterministic (``epoch_seconds``
from the cost model), so a seed's figures repeat exactly; seeds still differ a lot, hence 8 of them:
epoch_ratio is total epochs over total epochs, hv_ratio the mean hypervolume with pruning over the mean without,
each with a 95 % bootstrap interval over seeds. The hypervolume without the epoch-time axis is printed too.

Data: synthetic 32 px, default search space, 8 epochs, 30 trials per run, seeds 0-7.
--quick: 16 px, tiny space, 4 epochs, 5 trials per run (the median pruner may stop only the 5th), one seed.

Reproduce:  .venv/bin/python benchmarks/pruning.py            (full, ~60 min on 2 shared cores)
            .venv/bin/python benchmarks/pruning.py --quick
"""
from __future__ import annotations

import statistics
import time

from _common import epochs_spent, parser, result, setup, temp_storage


def ratio_interval(a: list[float], b: list[float], rounds: int = 4000) -> tuple[float, float]:
    """95 % bootstrap interval (over seeds, resampled in pairs) of sum(a) / sum(b)."""
    import random

    rng = random.Random(0)
    n, ratios = len(a), []
    for _ in range(rounds):
        idx = [rng.randrange(n) for _ in range(n)]
        den = sum(b[i] for i in idx)
        if den > 0:
            ratios.append(sum(a[i] for i in idx) / den)
    ratios.sort()
    if not ratios:
        return float("nan"), float("nan")
    return ratios[int(0.025 * (len(ratios) - 1))], ratios[int(0.975 * (len(ratios) - 1))]


def main() -> int:
    ap = parser(__doc__)
    ap.add_argument("--trials", type=int, default=None, help="trials per run (default 30, --quick 5)")
    ap.add_argument("--epochs", type=int, default=None, help="epochs per trial (default 8, --quick 4)")
    ap.add_argument("--pruner", default="median", help="pruner of the pruned run (default median)")
    ap.add_argument("--trial-batch", type=int, default=4, help="trials proposed together (default 4, as search)")
    ap.add_argument("--sequential", action="store_true",
                    help="also run the unpruned search with --trial-batch 0: the hypervolume cost of batching")
    ap.add_argument("--seeds", default=None, help="comma-separated seeds (default 0-7; --quick: --seed)")
    args = ap.parse_args()
    started = time.perf_counter()
    setup(args)
    from nas_med.report import Scale, hypervolume
    from nas_med.search import SearchConfig, search
    from nas_med.select import completed

    size, space, epochs, trials = (16, "tiny", 4, 5) if args.quick else (32, "default", 8, 30)
    epochs, trials = args.epochs or epochs, args.trials or trials
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else ([args.seed] if args.quick else list(range(8)))
    # (label, pruner, trial batch): the pruned and unpruned runs of the default batched (reproducible) search,
    # and with --sequential the unpruned search sampling each trial as it starts (the cost of batching)
    arms = [(args.pruner, args.pruner, args.trial_batch), ("none", "none", args.trial_batch)]
    if args.sequential:
        arms.append(("sequential", "none", 0))
    names = [a[0] for a in arms]
    print(f"search: synthetic {size} px, space {space}, {trials} trials x {epochs} epochs, TPE; pruner "
          f"{args.pruner} vs none, trials proposed in batches of {args.trial_batch}"
          f"{' (and unbatched, unpruned)' if args.sequential else ''}; seeds {seeds}", flush=True)
    epochs_used: dict[str, list[int]] = {a: [] for a in names}
    seconds = {a: 0.0 for a in names}
    hv: dict[str, list[float]] = {a: [] for a in names}
    hv3: dict[str, list[float]] = {a: [] for a in names}
    for seed in seeds:
        values = {}
        for name, pruner, batch in arms:
            t = time.perf_counter()
            with temp_storage() as url:
                config = SearchConfig(dataset="synthetic", size=size, space=space, trials=trials, epochs=epochs,
                                      study=f"pruning-{name}", storage=url, seed=seed, pruner=pruner,
                                      trial_batch=batch, sampler="tpe", device="cpu", quiet=True, artifacts=False)
                study = search(config)
                states = [t.state.name.lower() for t in study.trials]
                values[name] = [t.values for t in completed(study)]
                spent = epochs_spent(study)
            took = time.perf_counter() - t
            epochs_used[name].append(spent)
            seconds[name] += took
            print(f"  seed {seed} {name:>10}: {spent} epochs, states "
                  f"{ {s: states.count(s) for s in sorted(set(states))} }, {took:.0f} s", flush=True)
        pooled = [v for a in names for v in values[a]]
        scale = Scale.fit(pooled)
        no_time = {a: [[v[0], v[1], 1.0, v[3]] for v in values[a]] for a in names}
        scale3 = Scale.fit([v for a in names for v in no_time[a]])
        for a in names:
            hv[a].append(hypervolume(values[a], scale))
            hv3[a].append(hypervolume(no_time[a], scale3))
        print(f"  seed {seed} hypervolume: " + ", ".join(f"{a} {hv[a][-1]:.4f}" for a in names)
              + "; without epoch time " + ", ".join(f"{a} {hv3[a][-1]:.4f}" for a in names), flush=True)
    mean = {a: statistics.fmean(hv[a]) for a in names}
    mean3 = {a: statistics.fmean(hv3[a]) for a in names}
    epoch_ratio = sum(epochs_used[names[0]]) / max(1, sum(epochs_used["none"]))
    hv_ratio = mean[names[0]] / mean["none"] if mean["none"] > 0 else float("nan")
    hv_lo, hv_hi = ratio_interval(hv[names[0]], hv["none"])
    ep_lo, ep_hi = ratio_interval(epochs_used[names[0]], epochs_used["none"])
    figures = {"epoch_ratio": round(epoch_ratio, 4), "hv_ratio": round(hv_ratio, 4), "hv_ratio_low": round(hv_lo, 4),
               "hv_ratio_high": round(hv_hi, 4)}
    if args.sequential:
        b_lo, b_hi = ratio_interval(hv["none"], hv["sequential"])
        batch_ratio = mean["none"] / mean["sequential"] if mean["sequential"] > 0 else float("nan")
        print(f"cost of batched proposals (batches of {args.trial_batch} vs each trial as it starts, unpruned): "
              f"hypervolume ratio {batch_ratio:.3f} [95 % {b_lo:.3f}, {b_hi:.3f}]; per seed "
              f"{', '.join(f'{a / b:.3f}' for a, b in zip(hv['none'], hv['sequential']))}")
        figures.update(batch_hv_ratio=round(batch_ratio, 4), batch_hv_ratio_low=round(b_lo, 4))
    arms = names
    print(f"epochs: {args.pruner} {sum(epochs_used[arms[0]])}, none {sum(epochs_used['none'])}; ratio "
          f"{epoch_ratio:.3f} [95 % {ep_lo:.3f}, {ep_hi:.3f}]")
    print(f"mean hypervolume (4 objectives): {args.pruner} {mean[arms[0]]:.4f}, none {mean['none']:.4f}; ratio "
          f"{hv_ratio:.3f} [95 % {hv_lo:.3f}, {hv_hi:.3f}]; per-seed ratios "
          f"{', '.join(f'{a / b:.3f}' for a, b in zip(hv[arms[0]], hv['none']))}")
    print(f"mean hypervolume without the epoch-time axis: {args.pruner} {mean3[arms[0]]:.4f}, none "
          f"{mean3['none']:.4f} (ratio {mean3[arms[0]] / max(mean3['none'], 1e-12):.3f})")
    print(f"wall time: {args.pruner} {seconds[arms[0]]:.0f} s, none {seconds['none']:.0f} s "
          f"(ratio {seconds[arms[0]] / seconds['none']:.3f})")
    result(figures, "goal epoch_ratio <= 0.70 and hv_ratio >= 0.95, >= 8 seeds", started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
