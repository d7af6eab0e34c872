"""Pruning: training epochs spent and hypervolume reached, with and without pruning, at the same trial count.

Goal: pruning spends at least 40 % fewer training epochs (epoch_ratio <= 0.60) while reaching at least 95 % of
the hypervolume of the unpruned search (hv_ratio >= 0.95).

Per seed, two ``nas_med.search.search`` runs with the same TPE sampler seed, the same data and the same number of
trials: one with the median pruner (the default of ``nas-med search``, through the shadow study and Pareto-aware:
a candidate is stopped only when a completed one with no more parameters and FLOPs beat it at the same epoch;
``--pruner`` picks another, e.g. ``pareto`` or ``hyperband``), one with ``--pruner none``. Epochs are counted from the ``history`` user attr of every trial
(completed, pruned and failed). Hypervolume: completed candidates of each run, on one normalisation fitted to
both runs of that seed (``nas_med.report.hypervolume``: losses -AUC, log10 params, log10 epoch seconds, -CAM
quality, scaled to [0, 1], reference point 1.1; exact WFG). One pair of runs is noisy (the measured epoch time
feeds TPE, so the two runs part ways early), hence seeds 0, 1, 2: epoch_ratio is total epochs over total epochs,
hv_ratio the mean hypervolume with pruning over the mean without. The hypervolume without the epoch-time axis
is printed too.

Data: synthetic 32 px, default search space, 8 epochs, 30 trials per run, seeds 0, 1, 2.
--quick: 16 px, tiny space, 4 epochs, 5 trials per run (the median pruner may stop only the 5th), one seed.

Reproduce:  .venv/bin/python benchmarks/pruning.py            (full, ~12 min on 2 shared cores)
            .venv/bin/python benchmarks/pruning.py --quick
"""
from __future__ import annotations

import statistics
import time

from _common import epochs_spent, parser, result, setup, temp_storage


def main() -> int:
    ap = parser(__doc__)
    ap.add_argument("--trials", type=int, default=None, help="trials per run (default 30, --quick 5)")
    ap.add_argument("--epochs", type=int, default=None, help="epochs per trial (default 8, --quick 4)")
    ap.add_argument("--pruner", default="median", help="pruner of the pruned run (default median)")
    ap.add_argument("--seeds", default=None, help="comma-separated seeds (default 0,1,2; --quick: --seed)")
    args = ap.parse_args()
    started = time.perf_counter()
    setup(args)
    from nas_med.report import Scale, hypervolume
    from nas_med.search import SearchConfig, search
    from nas_med.select import completed

    size, space, epochs, trials = (16, "tiny", 4, 5) if args.quick else (32, "default", 8, 30)
    epochs, trials = args.epochs or epochs, args.trials or trials
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else ([args.seed] if args.quick else [0, 1, 2])
    arms = (args.pruner, "none")
    print(f"search: synthetic {size} px, space {space}, {trials} trials x {epochs} epochs, TPE; pruner "
          f"{args.pruner} vs none; seeds {seeds}", flush=True)
    epochs_used = {a: 0 for a in arms}
    seconds = {a: 0.0 for a in arms}
    hv: dict[str, list[float]] = {a: [] for a in arms}
    hv3: dict[str, list[float]] = {a: [] for a in arms}
    for seed in seeds:
        values = {}
        for pruner in arms:
            t = time.perf_counter()
            with temp_storage() as url:
                config = SearchConfig(dataset="synthetic", size=size, space=space, trials=trials, epochs=epochs,
                                      study=f"pruning-{pruner}", storage=url, seed=seed, pruner=pruner,
                                      sampler="tpe", device="cpu", quiet=True)
                study = search(config)
                states = [t.state.name.lower() for t in study.trials]
                values[pruner] = [t.values for t in completed(study)]
                spent = epochs_spent(study)
            took = time.perf_counter() - t
            epochs_used[pruner] += spent
            seconds[pruner] += took
            print(f"  seed {seed} {pruner:>9}: {spent} epochs, states "
                  f"{ {s: states.count(s) for s in sorted(set(states))} }, {took:.0f} s", flush=True)
        scale = Scale.fit(values[arms[0]] + values[arms[1]])
        no_time = {a: [[v[0], v[1], 1.0, v[3]] for v in values[a]] for a in arms}
        scale3 = Scale.fit(no_time[arms[0]] + no_time[arms[1]])
        for a in arms:
            hv[a].append(hypervolume(values[a], scale))
            hv3[a].append(hypervolume(no_time[a], scale3))
        print(f"  seed {seed} hypervolume: {args.pruner} {hv[arms[0]][-1]:.4f}, none {hv['none'][-1]:.4f}; without "
              f"epoch time {hv3[arms[0]][-1]:.4f} vs {hv3['none'][-1]:.4f}", flush=True)
    mean = {a: statistics.fmean(hv[a]) for a in arms}
    mean3 = {a: statistics.fmean(hv3[a]) for a in arms}
    epoch_ratio = epochs_used[arms[0]] / max(1, epochs_used["none"])
    hv_ratio = mean[arms[0]] / mean["none"] if mean["none"] > 0 else float("nan")
    print(f"epochs: {args.pruner} {epochs_used[arms[0]]}, none {epochs_used['none']}")
    print(f"mean hypervolume (4 objectives): {args.pruner} {mean[arms[0]]:.4f}, none {mean['none']:.4f}; "
          f"per-seed ratios {', '.join(f'{a / b:.3f}' for a, b in zip(hv[arms[0]], hv['none']))}")
    print(f"mean hypervolume without the epoch-time axis: {args.pruner} {mean3[arms[0]]:.4f}, none "
          f"{mean3['none']:.4f} (ratio {mean3[arms[0]] / max(mean3['none'], 1e-12):.3f})")
    print(f"wall time: {args.pruner} {seconds[arms[0]]:.0f} s, none {seconds['none']:.0f} s "
          f"(ratio {seconds[arms[0]] / seconds['none']:.3f})")
    result({"epoch_ratio": round(epoch_ratio, 4), "hv_ratio": round(hv_ratio, 4)},
           "goal epoch_ratio <= 0.60 and hv_ratio >= 0.95", started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
